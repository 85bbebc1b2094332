using System.CommandLine;
using System.Net;
using LaneQueue.Dashboard;
using LaneQueue.Producer;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace LaneQueue.Cli;

/// <summary>
/// <c>lanequeue dashboard --port N</c>: the LaneQueue dashboard on its own web server, on localhost unless <c>--host</c>
/// says otherwise, read-only unless <c>--enable-actions</c> (then anyone who reaches the port may redrive, purge, pause and
/// resume; the posts still need the page's antiforgery token).
/// </summary>
static class DashboardCli
{
    /// <summary>The policy <c>--enable-actions</c> registers (it lets every caller act).</summary>
    public const string ActionsPolicy = "lanequeue-dashboard-actions";

    public static void AddTo(RootCommand root) => root.Add(Command());

    static Command Command()
    {
        var port = new Option<int>("--port") { Description = "Port to listen on (0: any free port)", DefaultValueFactory = _ => 8080 };
        var host = new Option<string>("--host") { Description = "Address to bind (default 127.0.0.1: this machine only; 0.0.0.0: every interface)", DefaultValueFactory = _ => "127.0.0.1" };
        var actions = new Option<bool>("--enable-actions") { Description = "Allow redrive, purge, pause / resume and handler modes from the page (default: read-only)" };
        var management = new Option<string?>("--management-url")
        {
            Description = "RabbitMQ management API (e.g. http://localhost:15672) for each lane's oldest wait, as the broker URL's user (default: none, no oldest wait)",
        };
        var command = new Command("dashboard", "Serve the web dashboard: lanes live, the fleet, task timelines, dead letters") { port, host, actions, management };
        command.SetAction(async (parse, ct) =>
        {
            var errors = parse.InvocationConfiguration.Error;
            if (parse.GetValue(management) is { } url && (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https")))
            {
                await errors.WriteLineAsync($"error: --management-url must be an http(s) URL such as http://localhost:15672, got '{url}'");
                return ProducerCli.InvalidInput;
            }
            if (parse.GetValue(port) is < 0 or > 65535)
            {
                await errors.WriteLineAsync($"error: --port must be from 0 to 65535, got {parse.GetValue(port)}");
                return ProducerCli.InvalidInput;
            }
            return await CliRun.ReportingErrorsAsync(parse, async () =>
            {
                try
                {
                    await using var app = Build(CliProducerOptions.From(parse), parse.GetValue(host)!, parse.GetValue(port), parse.GetValue(actions), parse.GetValue(management));
                    await app.StartAsync(ct);
                    await parse.InvocationConfiguration.Output.WriteLineAsync(
                        $"LaneQueue dashboard on {string.Join(", ", Addresses(app))} ({(parse.GetValue(actions) ? "actions enabled" : "read-only")}); Ctrl+C stops it");
                    await app.WaitForShutdownAsync(ct);
                    return ProducerCli.Ok;
                }
                catch (IOException ex)
                {
                    await errors.WriteLineAsync($"error: cannot listen on {parse.GetValue(host)}:{parse.GetValue(port)}: {ex.Message}");
                    return ProducerCli.InvalidInput;
                }
            });
        });
        return command;
    }

    /// <summary>The dashboard's web application (not started), serving at the root of <c>http://host:port</c>.</summary>
    internal static WebApplication Build(ProducerOptions producer, string host, int port, bool enableActions, string? managementUrl = null)
    {
        if (string.IsNullOrWhiteSpace(host) || Uri.CheckHostName(host) == UriHostNameType.Unknown)
            throw new ArgumentException($"--host must be a host name or IP address, got '{host}'");
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        var address = IPAddress.TryParse(host, out var ip) && ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{host}]" : host;
        builder.WebHost.UseUrls($"http://{address}:{port}");
        builder.Services.AddLaneQueueProducer(o =>
        {
            o.RabbitMqUrl = producer.RabbitMqUrl;
            o.Topology = producer.Topology;
            o.QuorumQueues = producer.QuorumQueues;
            o.DeliveryLimit = producer.DeliveryLimit;
            o.HistoryMaxAge = producer.HistoryMaxAge;
            o.HistoryMaxBytes = producer.HistoryMaxBytes;
            o.ClientName = $"lanequeue-dashboard@{Environment.MachineName}";
        });
        builder.Services.AddLaneQueueDashboard(o =>
        {
            o.ActionsPolicy = enableActions ? ActionsPolicy : null;
            o.ManagementUrl = managementUrl;
        });
        if (enableActions)
            builder.Services.AddAuthorizationBuilder().AddPolicy(ActionsPolicy, p => p.RequireAssertion(_ => true));
        var app = builder.Build();
        app.MapLaneQueueDashboard("/");
        return app;
    }

    /// <summary>The addresses the started application listens on (with the real port when 0 was asked).</summary>
    internal static IReadOnlyCollection<string> Addresses(WebApplication app) =>
        app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.ToList() ?? [];
}
