using LaneQueue.Consumer;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace LaneQueue.Tests.Broker;

/// <summary>Starts a LaneQueue consumer (a whole generic host with its own bus) inside the test process.</summary>
internal static class ConsumerHost
{
    public static async Task<IHost> StartAsync(
        string url,
        Action<LaneQueueOptions>? configure = null,
        Action<LaneQueueConsumerBuilder>? handlers = null,
        string? name = null)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        // As under Development: a scoped service resolved from the root provider fails (handlers come from a scope per task).
        builder.ConfigureContainer(new DefaultServiceProviderFactory(new ServiceProviderOptions { ValidateScopes = true }));
        // LANEQUEUE_TEST_LOG=Information (or Debug) shows the consumers' own log while a test runs.
        var level = Enum.TryParse<LogLevel>(Environment.GetEnvironmentVariable("LANEQUEUE_TEST_LOG"), out var chosen) ? chosen : LogLevel.Warning;
        builder.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss.fff ";
        }).SetMinimumLevel(level).AddFilter("MassTransit", LogLevel.Warning);
        var consumer = builder.AddLaneQueueConsumer(o =>
        {
            o.RabbitMqUrl = url;
            o.ConsumerName = name ?? $"test-{Guid.NewGuid():N}"[..13];
            o.ShutdownTimeoutSeconds = 10;
            configure?.Invoke(o);
        });
        consumer.AddBuiltInHandlers();
        handlers?.Invoke(consumer);
        var host = builder.Build();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        // A start that ignores its token must fail the test, not hang the run.
        await host.StartAsync(timeout.Token).WaitAsync(TimeSpan.FromSeconds(90));
        return host;
    }

    public static LaneGate Gate(this IHost host) => host.Services.GetRequiredService<LaneGate>();

    /// <summary>Whether the lane gate of this consumer has its lane's endpoint stopped.</summary>
    public static bool IsPaused(this IHost host, LaneQueue.Contracts.SessionLane lane) => host.Services.GetRequiredService<LaneEndpoints>().IsPaused(lane);

    public static async Task StopQuietlyAsync(this IHost host)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await host.StopAsync(timeout.Token).WaitAsync(TimeSpan.FromSeconds(60));
        host.Dispose();
    }
}
