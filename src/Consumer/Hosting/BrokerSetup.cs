using LaneQueue.Contracts;
using LaneQueue.Producer;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace LaneQueue.Consumer;

/// <summary>
/// Runs before the bus starts: checks the broker answers (failing the start with what to do when it does not)
/// and declares the ingress and results exchanges, so producers can bind result queues from the first moment.
/// </summary>
internal sealed class BrokerSetup(IOptions<LaneQueueOptions> options) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var settings = options.Value;
        try
        {
            await using var connection = await BrokerConnection.ConnectAsync(settings.RabbitMqUrl, $"{settings.ConsumerName}-setup", cancellationToken);
            await using var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
            await BrokerTopology.DeclareAsync(channel, cancellationToken);
            if (settings.QuorumQueues && settings.DeliveryLimit is not null)
            {
                var queues = settings.Topology == LaneTopology.PriorityQueue
                    ? [BrokerNames.PriorityQueue]
                    : SessionLanes.All.Select(BrokerNames.LaneQueue);
                await PoisonMessages.DeclareErrorQueuesAsync(channel, queues, cancellationToken);
            }
        }
        catch (Exception ex) when (ex is RabbitMQ.Client.Exceptions.BrokerUnreachableException or RabbitMQ.Client.Exceptions.OperationInterruptedException)
        {
            throw new InvalidOperationException(
                $"cannot set up LaneQueue on RabbitMQ at {BrokerConnection.Redact(settings.RabbitMqUrl)}: {ex.Message}. " +
                $"Start a broker with 'bash scripts/broker-up.sh', or point LaneQueue:RabbitMqUrl / {BrokerConnection.UrlVariable} at one.", ex);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
