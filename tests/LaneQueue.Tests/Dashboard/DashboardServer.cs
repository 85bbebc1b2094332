using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using LaneQueue.Cli;
using LaneQueue.Dashboard;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace LaneQueue.Tests.Dashboard;

/// <summary>
/// A dashboard on a real Kestrel on a free loopback port: embedded in a host at a prefix (the library's way) or the
/// standalone one of <c>lanequeue dashboard</c>. Its client keeps cookies, as a browser does (the antiforgery cookie).
/// </summary>
internal sealed class DashboardServer : IAsyncDisposable
{
    readonly WebApplication _app;

    DashboardServer(WebApplication app, string root)
    {
        _app = app;
        Root = root;
        Client = new HttpClient(new HttpClientHandler { CookieContainer = new CookieContainer() }) { BaseAddress = new Uri(root), Timeout = TimeSpan.FromSeconds(60) };
    }

    /// <summary>The dashboard's page, ending in '/'.</summary>
    public string Root { get; }

    public HttpClient Client { get; }

    /// <summary>
    /// Embedded at <c>/lanequeue</c>. <paramref name="allow"/>: null = no actions policy; otherwise a policy named
    /// "operators" that allows (true) or denies (false) every user. <paramref name="configure"/> changes further options.
    /// </summary>
    public static async Task<DashboardServer> EmbeddedAsync(string url, bool? allow, string? managementUrl = null, Action<LaneQueueDashboardOptions>? configure = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Services.AddLaneQueueProducer(o => o.RabbitMqUrl = url);
        builder.Services.AddLaneQueueDashboard(o =>
        {
            o.SampleInterval = TimeSpan.FromMilliseconds(300);
            o.ActionsPolicy = allow is null ? null : "operators";
            o.ManagementUrl = managementUrl;
            configure?.Invoke(o);
        });
        if (allow is { } allowed)
            builder.Services.AddAuthorizationBuilder().AddPolicy("operators", p => p.RequireAssertion(_ => allowed));
        var app = builder.Build();
        app.MapLaneQueueDashboard("/lanequeue");
        await app.StartAsync();
        return new DashboardServer(app, Address(app) + "/lanequeue/");
    }

    /// <summary>The standalone dashboard of <c>lanequeue dashboard --host 127.0.0.1 --port 0 [--enable-actions]</c>.</summary>
    public static async Task<DashboardServer> StandaloneAsync(string url, bool enableActions, string host = "127.0.0.1", string? managementUrl = null)
    {
        var app = DashboardCli.Build(new ProducerOptions { RabbitMqUrl = url }, host, 0, enableActions, managementUrl);
        await app.StartAsync();
        return new DashboardServer(app, Address(app) + "/");
    }

    public IReadOnlyCollection<string> Addresses => DashboardCli.Addresses(_app);

    static string Address(WebApplication app) => DashboardCli.Addresses(app).First().TrimEnd('/');

    /// <summary>The page's antiforgery form field and token (the page also sets the cookie in <see cref="Client"/>).</summary>
    public async Task<(string Field, string Token, bool Actions)> PageAsync()
    {
        var page = await Client.GetStringAsync("");
        string Attribute(string name) => WebUtility.HtmlDecode(Regex.Match(page, $"{name}=\"([^\"]*)\"").Groups[1].Value);
        return (Attribute("data-token-field"), Attribute("data-token"), Attribute("data-actions") == "true");
    }

    public Task<JsonElement> StatsAsync() => GetJsonAsync("api/stats");

    /// <summary>GET <paramref name="path"/> as JSON (a failure status throws, naming the answer).</summary>
    public async Task<JsonElement> GetJsonAsync(string path)
    {
        using var response = await Client.GetAsync(path);
        var text = await response.Content.ReadAsStringAsync();
        if (!response.IsSuccessStatusCode)
            throw new HttpRequestException($"GET {path}: {(int)response.StatusCode} {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    /// <summary>The lane's stats in the latest snapshot.</summary>
    public static JsonElement Lane(JsonElement stats, string lane) =>
        stats.GetProperty("snapshot").GetProperty("lanes").EnumerateArray().Select(l => l.GetProperty("stats")).Single(s => s.GetProperty("lane").GetString() == lane);

    public Task<HttpResponseMessage> PostAsync(string path, IDictionary<string, string> form) =>
        Client.PostAsync(path, new FormUrlEncodedContent(form));

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
