using LaneQueue.Producer;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace LaneQueue.Consumer;

/// <summary>
/// Runs before the bus starts: checks the broker answers (failing the start with what to do when it does not),
/// declares the shared exchanges, so producers can bind result queues from the first moment, and the lane queues from
/// the one definition producers use too (<see cref="LaneQueueTopology"/>; MassTransit re-declares them with the same
/// arguments). Lanes the broker has with other arguments, or in the other topology, fail the start naming the setting.
/// </summary>
internal sealed class BrokerSetup(IOptions<LaneQueueOptions> options) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var settings = options.Value;
        try
        {
            await using var connection = await BrokerConnection.ConnectAsync(settings.RabbitMqUrl, $"{settings.ConsumerName}-setup", cancellationToken);
            await BrokerTopology.DeclareAsync(connection, settings.HistoryMaxAge, settings.HistoryMaxBytes, cancellationToken);
            await settings.LaneQueues.DeclareAsync(connection, cancellationToken, consumer: true);
        }
        catch (TopologyMismatchException ex)
        {
            throw new InvalidOperationException($"cannot start consumer '{settings.ConsumerName}': {ex.Message}", ex);
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
