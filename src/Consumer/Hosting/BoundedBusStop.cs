using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace LaneQueue.Consumer;

/// <summary>
/// MassTransit's hosted service with a stop that ends. MassTransit 8.5 can wait forever to stop a receive endpoint that was
/// stopped and started again at run time (a lane paused and resumed), whatever the shutdown token says: the consumer would
/// never exit. After <see cref="LaneQueueOptions.ShutdownTimeoutSeconds"/> + 5 s (the host's own shutdown time) shutdown goes
/// on without it; a delivery not yet acked goes back to its queue when the connection closes, so nothing is lost.
/// </summary>
internal sealed class BoundedBusStop(IHostedService bus, IServiceProvider services, IOptions<LaneQueueOptions> options, ILogger<BoundedBusStop> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        // A host's AddMassTransit after AddLaneQueueConsumer registers MassTransit's hosted service again, which would start
        // and stop every bus twice: refuse that with what to do.
        if (services.GetServices<IHostedService>().Any(service => service is MassTransit.MassTransitHostedService))
        {
            throw new InvalidOperationException(
                "AddMassTransit was called after AddLaneQueueConsumer: call services.AddMassTransit(...) first, then AddLaneQueueConsumer()");
        }
        return bus.StartAsync(cancellationToken);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        var limit = TimeSpan.FromSeconds(options.Value.ShutdownTimeoutSeconds + 5);
        try
        {
            await bus.StopAsync(cancellationToken).WaitAsync(limit, cancellationToken);
        }
        catch (Exception ex) when (ex is TimeoutException || cancellationToken.IsCancellationRequested && ex is OperationCanceledException)
        {
            Log.BusStopTimedOut(logger, limit.TotalSeconds);
        }
    }
}
