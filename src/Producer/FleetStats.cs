using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Serialization;
using LaneQueue.Contracts;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace LaneQueue.Producer;

/// <summary>One lane across the fleet (the reference's <c>queue_stats()</c> and more).</summary>
public sealed record LaneStats
{
    [JsonPropertyName("lane")] public required string Lane { get; init; }
    /// <summary>Ready at the broker (null in the priority-queue topology, where lanes share one queue).</summary>
    [JsonPropertyName("pending")] public long? Pending { get; init; }
    /// <summary>
    /// Delivered to a consumer and waiting there for a slot (the consumers' heartbeats): not ready at the broker any more, not
    /// started yet. A lane's backlog is <see cref="Pending"/> + this.
    /// </summary>
    [JsonPropertyName("waiting")] public int Waiting { get; init; }
    [JsonPropertyName("active")] public int Active { get; init; }
    [JsonPropertyName("max_concurrency")] public int MaxConcurrency { get; init; }
    [JsonPropertyName("handler_mode")] public string HandlerMode { get; init; } = "internal";
    [JsonPropertyName("paused_on")] public int PausedOn { get; init; }
    [JsonPropertyName("paused_reasons")] public IReadOnlyList<string> PausedReasons { get; init; } = [];
    [JsonPropertyName("completed")] public long Completed { get; init; }
    [JsonPropertyName("failed")] public long Failed { get; init; }
    [JsonPropertyName("dead_lettered")] public long DeadLettered { get; init; }
    [JsonPropertyName("dead_letters_waiting")] public long DeadLettersWaiting { get; init; }
}

/// <summary>The whole fleet: lanes, consumers online, totals.</summary>
public sealed record QueueStats
{
    [JsonPropertyName("at")] public DateTimeOffset At { get; init; } = DateTimeOffset.UtcNow;
    [JsonPropertyName("consumers")] public IReadOnlyList<ConsumerHeartbeat> Consumers { get; init; } = [];
    [JsonPropertyName("lanes")] public IReadOnlyList<LaneStats> Lanes { get; init; } = [];
    [JsonPropertyName("total_pending")] public long TotalPending { get; init; }
    [JsonPropertyName("total_waiting")] public int TotalWaiting { get; init; }
    [JsonPropertyName("total_active")] public int TotalActive { get; init; }
    [JsonPropertyName("external_pending")] public int ExternalPending { get; init; }
    /// <summary>
    /// Where the lanes' completed / failed / dead-lettered counts come from: <c>history</c> (every run the task history holds,
    /// across consumer restarts) or <c>heartbeats</c> (the online consumers' counters since they started; when this user may
    /// not read the history).
    /// </summary>
    [JsonPropertyName("counts_from")] public string CountsFrom { get; init; } = "history";
}

/// <summary>
/// Builds <see cref="QueueStats"/> from the consumers' heartbeats (listened to for a little more than one heartbeat
/// interval) and the broker's queue depths. A consumer that stopped beating is simply not heard: it drops out.
/// </summary>
internal static class FleetStats
{
    public static async Task<QueueStats> ReadAsync(IConnection connection, TimeSpan listen, CancellationToken cancellationToken = default) =>
        await BuildAsync(connection, await HeartbeatsAsync(connection, listen, cancellationToken), cancellationToken);

    /// <summary>
    /// The stats of the consumers whose heartbeats are <paramref name="heartbeats"/> (the latest of each) plus the broker's
    /// depths and the history's counts: for a reader that listens to heartbeats all the time (the dashboard) rather than
    /// for one window.
    /// </summary>
    public static async Task<QueueStats> BuildAsync(IConnection connection, IEnumerable<ConsumerHeartbeat> heartbeats, CancellationToken cancellationToken = default)
    {
        var consumers = heartbeats.OrderBy(b => b.Consumer, StringComparer.Ordinal).ToList();
        var history = await TryHistoryCountsAsync(connection, cancellationToken);
        var priorityTopology = consumers.Count > 0 && consumers.All(c => c.Topology == "PriorityQueue");
        var lanes = new List<LaneStats>();
        foreach (var lane in SessionLanes.All)
        {
            var mine = consumers.Select(c => c.Lanes.FirstOrDefault(l => l.Lane == lane)).OfType<LaneHeartbeat>().ToList();
            var pending = priorityTopology ? null : await ReadyAsync(connection, BrokerNames.LaneQueue(lane), cancellationToken);
            // The lane's session shards (lanequeue.<lane>.sNN, numbered from 0): their tasks wait in the lane too. The consumers'
            // heartbeats say how many there are; without one, the shards that exist are read up to the first missing one.
            var shards = mine.Count > 0 ? mine.Max(l => l.SessionShards) : SessionShards.Max;
            for (var shard = 0; pending is not null && shard < shards; shard++)
            {
                if (await ReadyAsync(connection, SessionShards.Queue(lane, shard), cancellationToken) is not { } inShard)
                    break;
                pending += inShard;
            }
            var deadLetters = await ReadyAsync(connection, BrokerNames.DeadLetterQueue(priorityTopology ? BrokerNames.PriorityQueue : BrokerNames.LaneQueue(lane)), cancellationToken);
            var modes = mine.Select(l => l.HandlerMode).Distinct().ToList();
            lanes.Add(new LaneStats
            {
                Lane = lane.WireName(),
                Pending = pending,
                Waiting = mine.Sum(l => l.Waiting),
                Active = mine.Sum(l => l.Active),
                MaxConcurrency = mine.Sum(l => l.MaxConcurrency),
                HandlerMode = modes.Count switch { 0 => "-", 1 => modes[0], _ => "mixed" },
                PausedOn = mine.Count(l => l.Paused),
                PausedReasons = mine.Where(l => l.PausedReason is not null).Select(l => l.PausedReason!).Distinct().ToList(),
                Completed = history?.Lanes[lane.WireName()].Completed ?? mine.Sum(l => l.Completed),
                Failed = history?.Lanes[lane.WireName()].Failed ?? mine.Sum(l => l.Failed),
                DeadLettered = history?.Lanes[lane.WireName()].DeadLettered ?? mine.Sum(l => l.DeadLettered),
                DeadLettersWaiting = deadLetters ?? 0,
            });
        }
        return new QueueStats
        {
            Consumers = consumers,
            Lanes = lanes,
            TotalPending = lanes.Sum(l => l.Pending ?? 0),
            TotalWaiting = lanes.Sum(l => l.Waiting),
            TotalActive = lanes.Sum(l => l.Active),
            ExternalPending = consumers.Sum(c => c.ExternalPending),
            CountsFrom = history is null ? "heartbeats" : "history",
        };
    }

    /// <summary>
    /// The fleet's counts from the task history (they survive consumer restarts), or null when this user may not read the
    /// history stream or the counts queue (a producer-only user): then the online consumers' own counters are summed.
    /// </summary>
    static async Task<CountsCheckpoint?> TryHistoryCountsAsync(IConnection connection, CancellationToken cancellationToken)
    {
        try
        {
            return await HistoryCounts.ReadAsync(connection, cancellationToken);
        }
        catch (RabbitMQ.Client.Exceptions.OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode is 403 or 404)
        {
            return null;
        }
    }

    /// <summary>The heartbeat of every consumer heard over <paramref name="listen"/>, by consumer name.</summary>
    public static async Task<IReadOnlyList<ConsumerHeartbeat>> HeartbeatsAsync(IConnection connection, TimeSpan listen, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connection);
        var beats = new ConcurrentDictionary<string, ConsumerHeartbeat>();
        await using (await ListenToHeartbeatsAsync(connection, beat => beats[beat.Consumer] = beat, cancellationToken))
            await Task.Delay(listen, cancellationToken);
        return [.. beats.Values.OrderBy(b => b.Consumer, StringComparer.Ordinal)];
    }

    /// <summary>
    /// Hands every heartbeat the consumers send to <paramref name="onBeat"/> (a queue of the caller's own, gone with the
    /// returned channel); messages that are not heartbeats are passed over.
    /// </summary>
    public static async Task<IChannel> ListenToHeartbeatsAsync(IConnection connection, Action<ConsumerHeartbeat> onBeat, CancellationToken cancellationToken = default)
    {
        var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
        var queue = (await channel.QueueDeclareAsync("", durable: false, exclusive: true, autoDelete: true, cancellationToken: cancellationToken)).QueueName;
        await channel.QueueBindAsync(queue, BrokerNames.HeartbeatsExchange, "", cancellationToken: cancellationToken);
        var consumer = new AsyncEventingBasicConsumer(channel);
        consumer.ReceivedAsync += (_, delivery) =>
        {
            try
            {
                onBeat(TaskJson.Deserialize<ConsumerHeartbeat>(delivery.Body.Span));
            }
            catch (JsonException)
            {
                // not a heartbeat
            }
            return Task.CompletedTask;
        };
        await channel.BasicConsumeAsync(queue, autoAck: true, consumer, cancellationToken);
        return channel;
    }

    /// <summary>Every pending External-lane task the consumers report, by lane (highest first), then oldest announcement.</summary>
    public static IReadOnlyList<PendingExternalTask> PendingExternal(IEnumerable<ConsumerHeartbeat> consumers) =>
        [.. consumers.SelectMany(c => c.ExternalTasks).OrderBy(t => t.Lane).ThenBy(t => t.AnnouncedAt).ThenBy(t => t.TaskId, StringComparer.Ordinal)];

    /// <summary>
    /// Ready count of a queue (a passive declare), or null when it does not exist. Messages are never touched: a peek
    /// (basic.get + requeue) would count as a delivery on a quorum queue with a delivery limit and, read often enough, move
    /// a waiting task to the dead-letter queue; it would also mark the head redelivered.
    /// </summary>
    static async Task<long?> ReadyAsync(IConnection connection, string queue, CancellationToken cancellationToken)
    {
        await using var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
        try
        {
            return (await channel.QueueDeclarePassiveAsync(queue, cancellationToken)).MessageCount;
        }
        catch (RabbitMQ.Client.Exceptions.OperationInterruptedException)
        {
            return null;
        }
    }
}
