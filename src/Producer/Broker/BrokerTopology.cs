using LaneQueue.Contracts;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;

namespace LaneQueue.Producer;

/// <summary>
/// Declares the exchanges (and the fleet command stream) producers and consumers share. Idempotent, with the same
/// arguments as infra/rabbitmq/definitions.json. The lane queues: <see cref="LaneQueueTopology"/>.
/// </summary>
internal static partial class BrokerTopology
{
    /// <summary>Declares everything with the default task history retention (7 days / 5 GiB).</summary>
    public static Task DeclareAsync(IChannel channel, CancellationToken cancellationToken = default) =>
        DeclareAsync(channel, null, DefaultHistoryMaxAge, DefaultHistoryMaxBytes, cancellationToken);

    /// <summary>
    /// Declares everything on a channel of its own; the task history stream with the retention of
    /// <c>LaneQueue:HistoryMaxAge</c> / <c>HistoryMaxBytes</c>.
    /// </summary>
    /// <exception cref="TopologyMismatchException">The history stream exists with another retention.</exception>
    public static async Task DeclareAsync(IConnection connection, string historyMaxAge, long historyMaxBytes, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connection);
        await using var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
        await DeclareAsync(channel, connection, historyMaxAge, historyMaxBytes, cancellationToken);
    }

    /// <param name="connection">Where to diagnose a refused history declaration (null: the refusal is thrown as it is).</param>
    static async Task DeclareAsync(IChannel channel, IConnection? connection, string historyMaxAge, long historyMaxBytes, CancellationToken cancellationToken)
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
        // External work: one durable queue per lane, so a worker that starts listening after the announcement still gets it.
        foreach (var lane in SessionLanes.All)
        {
            await channel.QueueDeclareAsync(BrokerNames.ExternalQueue(lane), durable: true, exclusive: false, autoDelete: false, cancellationToken: cancellationToken);
            await channel.QueueBindAsync(BrokerNames.ExternalQueue(lane), BrokerNames.ExternalExchange, BrokerNames.RoutingKey(lane), cancellationToken: cancellationToken);
        }
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
        // Recurring schedules: the fleet monitor's record of each confirmed firing (the last firing per schedule), for a day.
        await channel.QueueDeclareAsync(BrokerNames.SchedulesFired, durable: true, exclusive: false, autoDelete: false,
            arguments: new Dictionary<string, object?> { ["x-queue-type"] = "stream", ["x-max-age"] = "1D" }, cancellationToken: cancellationToken);
        // Task history: every result and the lifecycle events (appended in batches by the consumers), for a lookup by id
        // after the task finished.
        var history = new Dictionary<string, object?> { ["x-queue-type"] = "stream", ["x-max-age"] = historyMaxAge, ["x-max-length-bytes"] = historyMaxBytes };
        try
        {
            await channel.QueueDeclareAsync(BrokerNames.History, durable: true, exclusive: false, autoDelete: false, arguments: history, cancellationToken: cancellationToken);
        }
        catch (OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == 406 && connection is not null)
        {
            throw await TopologyMismatchException.HistoryAsync(connection, BrokerNames.History, history, ex, cancellationToken);
        }
        // Older versions bound the stream to every command.* event, one stream write each; consumers now append the events
        // in batches (BrokerPublisher), so that binding would store them twice: removed wherever it is left (idempotent).
        await channel.QueueUnbindAsync(BrokerNames.History, BrokerNames.EventsExchange, "command.#", cancellationToken: cancellationToken);
        await channel.QueueDeclareAsync(BrokerNames.HistoryCounts, durable: true, exclusive: false, autoDelete: false,
            arguments: new Dictionary<string, object?> { ["x-max-length"] = 1 }, cancellationToken: cancellationToken);
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

    /// <summary>Default retention of the task history stream (<c>LaneQueue:HistoryMaxAge</c>): 7 days.</summary>
    public const string DefaultHistoryMaxAge = "7D";

    /// <summary>Default size cap of the task history stream (<c>LaneQueue:HistoryMaxBytes</c>): 5 GiB.</summary>
    public const long DefaultHistoryMaxBytes = 5L * 1024 * 1024 * 1024;

    /// <summary>What is wrong with a history retention (empty when nothing is); each problem names its setting.</summary>
    public static List<string> HistoryProblems(string? maxAge, long maxBytes)
    {
        var problems = new List<string>();
        if (maxAge is null || !MaxAge().IsMatch(maxAge))
            problems.Add($"LaneQueue:HistoryMaxAge must be a RabbitMQ stream max-age: a whole number and one unit of Y, M, D, h, m, s (e.g. 7D, 12h, 30m), got '{maxAge}'");
        if (maxBytes < 1024 * 1024)
            problems.Add($"LaneQueue:HistoryMaxBytes must be at least 1048576 (1 MiB), got {maxBytes}");
        return problems;
    }

    [System.Text.RegularExpressions.GeneratedRegex("^[1-9][0-9]{0,8}[YMDhms]$", System.Text.RegularExpressions.RegexOptions.CultureInvariant)]
    private static partial System.Text.RegularExpressions.Regex MaxAge();

    /// <summary>Size cap of the fleet state stream.</summary>
    public const long FleetStateMaxBytes = 64L * 1024 * 1024;
}
