using LaneQueue.Contracts;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;

namespace LaneQueue.Producer;

/// <summary>
/// Declares the exchanges (and the fleet command stream) producers and consumers share. Idempotent, with the same
/// arguments as infra/rabbitmq/definitions.json. The lane queues: <see cref="LaneQueueTopology"/>.
/// </summary>
internal static class BrokerTopology
{
    public static async Task DeclareAsync(IChannel channel, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(channel);
        await channel.ExchangeDeclareAsync(BrokerNames.TasksExchange, ExchangeType.Direct, durable: true, autoDelete: false, cancellationToken: cancellationToken);
        await channel.ExchangeDeclareAsync(BrokerNames.ResultsExchange, ExchangeType.Topic, durable: true, autoDelete: false, cancellationToken: cancellationToken);
        await channel.ExchangeDeclareAsync(BrokerNames.EventsExchange, ExchangeType.Topic, durable: true, autoDelete: false, cancellationToken: cancellationToken);
        await channel.ExchangeDeclareAsync(BrokerNames.HeartbeatsExchange, ExchangeType.Fanout, durable: true, autoDelete: false, cancellationToken: cancellationToken);
        await channel.ExchangeDeclareAsync(BrokerNames.FleetExchange, ExchangeType.Fanout, durable: true, autoDelete: false, cancellationToken: cancellationToken);
        await channel.ExchangeDeclareAsync(BrokerNames.LaneStatesExchange, ExchangeType.Fanout, durable: true, autoDelete: false, cancellationToken: cancellationToken);
        await channel.ExchangeDeclareAsync(BrokerNames.ExternalExchange, ExchangeType.Topic, durable: true, autoDelete: false, cancellationToken: cancellationToken);
        await channel.ExchangeDeclareAsync(BrokerNames.ExternalCompletionsExchange, ExchangeType.Direct, durable: true, autoDelete: false, cancellationToken: cancellationToken);
        await channel.QueueDeclareAsync(BrokerNames.FleetLog, durable: true, exclusive: false, autoDelete: false,
            arguments: new Dictionary<string, object?> { ["x-queue-type"] = "stream", ["x-max-age"] = "1D" }, cancellationToken: cancellationToken);
        await channel.QueueBindAsync(BrokerNames.FleetLog, BrokerNames.FleetExchange, "", cancellationToken: cancellationToken);
        // Lasting fleet state: no age limit (a size cap only against runaway scripts: ~64 MiB is hundreds of thousands of
        // operator actions). Its exchange feeds the log as well, which running consumers follow.
        await channel.ExchangeDeclareAsync(BrokerNames.FleetState, ExchangeType.Fanout, durable: true, autoDelete: false, cancellationToken: cancellationToken);
        await channel.QueueDeclareAsync(BrokerNames.FleetState, durable: true, exclusive: false, autoDelete: false,
            arguments: new Dictionary<string, object?> { ["x-queue-type"] = "stream", ["x-max-length-bytes"] = FleetStateMaxBytes }, cancellationToken: cancellationToken);
        await channel.QueueBindAsync(BrokerNames.FleetState, BrokerNames.FleetState, "", cancellationToken: cancellationToken);
        await channel.QueueBindAsync(BrokerNames.FleetLog, BrokerNames.FleetState, "", cancellationToken: cancellationToken);
        // Task history: every lifecycle event and every result, for a lookup by id after the task finished.
        await channel.QueueDeclareAsync(BrokerNames.History, durable: true, exclusive: false, autoDelete: false,
            arguments: new Dictionary<string, object?> { ["x-queue-type"] = "stream", ["x-max-age"] = HistoryMaxAge, ["x-max-length-bytes"] = HistoryMaxBytes },
            cancellationToken: cancellationToken);
        await channel.QueueBindAsync(BrokerNames.History, BrokerNames.EventsExchange, "command.#", cancellationToken: cancellationToken);
        try
        {
            // Last on purpose: a least-privilege consumer may not read every result (topic permission), so the broker refuses
            // this bind and closes the channel; scripts/broker-users.sh makes the binding as the administrator instead.
            await channel.QueueBindAsync(BrokerNames.History, BrokerNames.ResultsExchange, "#", cancellationToken: cancellationToken);
        }
        catch (OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == 403)
        {
        }
    }

    /// <summary>Retention of the task history stream: 7 days, at most 5 GiB.</summary>
    public const string HistoryMaxAge = "7D";

    /// <summary>Size cap of the task history stream.</summary>
    public const long HistoryMaxBytes = 5L * 1024 * 1024 * 1024;

    /// <summary>Size cap of the fleet state stream.</summary>
    public const long FleetStateMaxBytes = 64L * 1024 * 1024;
}
