using Microsoft.Extensions.DependencyInjection;
using System.Diagnostics;
using LaneQueue.Consumer;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace LaneQueue.Tests.Unit;

public sealed class BoundedBusStopTests
{
    static readonly IServiceProvider NoServices = new ServiceCollection().BuildServiceProvider();

    /// <summary>Stands in for MassTransit's hosted service when its stop never returns and ignores its token.</summary>
    sealed class HangingStop : IHostedService
    {
        public bool Started { get; private set; }

        public Task StartAsync(CancellationToken cancellationToken)
        {
            Started = true;
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken) => new TaskCompletionSource().Task;
    }

    [Fact]
    public async Task A_bus_stop_that_never_returns_is_given_up_after_the_shutdown_time()
    {
        var bus = new HangingStop();
        var stop = new BoundedBusStop(bus, NoServices, Options.Create(new LaneQueueOptions { ShutdownTimeoutSeconds = 1 }), NullLogger<BoundedBusStop>.Instance);
        await stop.StartAsync(CancellationToken.None);
        Assert.True(bus.Started);

        var clock = Stopwatch.StartNew();
        await stop.StopAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.InRange(clock.Elapsed, TimeSpan.FromSeconds(5.5), TimeSpan.FromSeconds(29)); // ShutdownTimeoutSeconds + 5
    }

    [Fact]
    public async Task The_host_shutdown_token_ends_the_wait_sooner()
    {
        var stop = new BoundedBusStop(new HangingStop(), NoServices, Options.Create(new LaneQueueOptions { ShutdownTimeoutSeconds = 60 }), NullLogger<BoundedBusStop>.Instance);
        using var shutdown = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        await stop.StopAsync(shutdown.Token).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(shutdown.IsCancellationRequested);
    }
}
