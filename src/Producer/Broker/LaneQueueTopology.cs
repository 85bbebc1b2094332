using LaneQueue.Contracts;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;

namespace LaneQueue.Producer;

/// <summary>One receive queue of the lane topology: its name, the lanes routed to it and its declare arguments.</summary>
/// <param name="ShardKey">For a session shard queue (<see cref="SessionShards"/>): its routing key; null for a lane's own queue.</param>
internal sealed record LaneReceiveQueue(string Name, IReadOnlyList<SessionLane> Lanes, IReadOnlyDictionary<string, object?> Arguments, string? ShardKey = null)
{
    /// <summary>The routing keys bound to the queue: the shard's, or each lane's.</summary>
    public IReadOnlyList<string> RoutingKeys => ShardKey is { } key ? [key] : [.. Lanes.Select(BrokerNames.RoutingKey)];

    /// <summary>The queue's <c>_error</c> exchange and queue, declared up front when the broker dead-letters to it (delivery limit).</summary>
    public string? ErrorQueue => Arguments.ContainsKey(LaneQueueTopology.DeadLetterExchangeArgument) ? BrokerNames.DeadLetterQueue(Name) : null;
}

/// <summary>
/// The one definition of the lane queues, declared by producers (<see cref="LaneQueueProducer.ConnectAsync"/>) and by
/// consumers before their bus starts, so a task submitted before any consumer ran is stored, and producer and consumer
/// cannot differ silently. It is what the consumer's MassTransit receive endpoints declare (MassTransit re-declares the
/// same right after): per receive queue a durable fanout exchange named like the queue and bound to it, the durable queue
/// with its arguments, and an exchange-to-exchange binding from <see cref="BrokerNames.TasksExchange"/> (direct) per lane,
/// routing key = lane. With a delivery limit also the <c>_error</c> exchange and queue the broker dead-letters to, and the
/// queue of copies the fleet answers those letters from (<see cref="BrokerNames.BrokerDeadLetters"/>).
/// An existing queue declared with other arguments fails the declaration with a <see cref="TopologyMismatchException"/>
/// that names the setting.
/// </summary>
/// <param name="SessionShards">Session shard queues per lane (<see cref="Contracts.SessionShards"/>); none when null or 0.</param>
/// <param name="SessionLimits">
/// Per lane, tasks of one session that may run at once: a sharded lane with a limit has single-active-consumer shard queues
/// (<c>x-single-active-consumer</c>), so a session's tasks reach one consumer at a time and its limit holds across the fleet.
/// </param>
internal sealed record LaneQueueTopology(LaneTopology Topology, bool QuorumQueues, int? DeliveryLimit, IReadOnlyDictionary<SessionLane, int>? SessionShards = null,
    IReadOnlyDictionary<SessionLane, int>? SessionLimits = null)
{
    public const string SingleActiveConsumerArgument = "x-single-active-consumer";

    public const string QueueTypeArgument = "x-queue-type";
    public const string DeliveryLimitArgument = "x-delivery-limit";
    public const string DeadLetterExchangeArgument = "x-dead-letter-exchange";
    public const string MaxPriorityArgument = "x-max-priority";

    /// <summary>The producer's view of the topology.</summary>
    public static LaneQueueTopology For(ProducerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return new(options.Topology, options.QuorumQueues, options.DeliveryLimit, options.SessionShards, options.SessionLimits);
    }

    /// <summary>Whether the lane's shard queues take one consumer at a time (the lane has shards and a session limit).</summary>
    public bool SingleActiveShards(SessionLane lane) => ShardsOf(lane) > 0 && SessionLimits?.GetValueOrDefault(lane) > 0;

    /// <summary>Equal when they declare the same queues (shard counts compared per lane, not by dictionary).</summary>
    public bool Equals(LaneQueueTopology? other) =>
        other is not null && Topology == other.Topology && QuorumQueues == other.QuorumQueues && DeliveryLimit == other.DeliveryLimit
        && SessionLanes.All.All(lane => ShardsOf(lane) == other.ShardsOf(lane) && SingleActiveShards(lane) == other.SingleActiveShards(lane));

    public override int GetHashCode() =>
        HashCode.Combine(Topology, QuorumQueues, DeliveryLimit, string.Join(",", SessionLanes.All.Select(lane => $"{ShardsOf(lane)}{SingleActiveShards(lane)}")));

    /// <summary>Session shard queues of <paramref name="lane"/> (0: none; only with queue per lane).</summary>
    public int ShardsOf(SessionLane lane) =>
        Topology == LaneTopology.QueuePerLane ? SessionShards?.GetValueOrDefault(lane) ?? 0 : 0;

    /// <summary>The receive queues, in declaration order.</summary>
    public IReadOnlyList<LaneReceiveQueue> Queues =>
        Topology == LaneTopology.PriorityQueue
            ? [Queue(BrokerNames.PriorityQueue, SessionLanes.All)]
            : [.. SessionLanes.All.SelectMany(lane => Enumerable.Range(0, ShardsOf(lane))
                .Select(shard => ShardQueue(lane, shard))
                .Prepend(Queue(BrokerNames.LaneQueue(lane), [lane])))];

    /// <summary>The queues of the other topology: if one exists, the broker's lanes are laid out differently.</summary>
    public IReadOnlyList<string> OtherTopologyQueues =>
        Topology == LaneTopology.PriorityQueue ? [.. SessionLanes.All.Select(BrokerNames.LaneQueue)] : [BrokerNames.PriorityQueue];

    LaneReceiveQueue ShardQueue(SessionLane lane, int shard)
    {
        var queue = Queue(Contracts.SessionShards.Queue(lane, shard), [lane]);
        var arguments = new Dictionary<string, object?>(queue.Arguments);
        if (SingleActiveShards(lane))
            arguments[SingleActiveConsumerArgument] = true;
        return queue with { Arguments = arguments, ShardKey = Contracts.SessionShards.RoutingKey(lane, shard) };
    }

    LaneReceiveQueue Queue(string name, IReadOnlyList<SessionLane> lanes)
    {
        var arguments = new Dictionary<string, object?>();
        if (QuorumQueues)
        {
            arguments[QueueTypeArgument] = "quorum";
            foreach (var (key, value) in DeadLetterArguments(name, DeliveryLimit))
                arguments[key] = value;
        }
        if (Topology == LaneTopology.PriorityQueue)
            arguments[MaxPriorityArgument] = SessionLanes.All.Count;
        return new LaneReceiveQueue(name, lanes, arguments);
    }

    /// <summary>
    /// A quorum queue's poison-message arguments (<see cref="DeliveryLimit"/>): the broker counts deliveries and, past the
    /// limit, dead-letters to the queue's <c>_error</c> exchange. None without a limit.
    /// </summary>
    public static IReadOnlyDictionary<string, object?> DeadLetterArguments(string queue, int? deliveryLimit) =>
        deliveryLimit is { } limit
            ? new Dictionary<string, object?> { [DeliveryLimitArgument] = limit, [DeadLetterExchangeArgument] = BrokerNames.DeadLetterQueue(queue) }
            : new Dictionary<string, object?>();

    /// <summary>
    /// Declares the lane topology (idempotent). Opens its own channels on <paramref name="connection"/>: a refused
    /// declaration closes its channel.
    /// </summary>
    /// <exception cref="TopologyMismatchException">The broker has the lanes laid out or declared differently.</exception>
    /// <exception cref="OperationInterruptedException">Another refusal, e.g. ACCESS_REFUSED (403) for a user without configure permission.</exception>
    /// <param name="consumer">
    /// Declared by a consumer: it also fails when a session shard queue past its own count exists (tasks would wait there that
    /// it never takes). A producer sharding less than the consumers is fine: its tasks go to shards they take.
    /// </param>
    public async Task DeclareAsync(IConnection connection, CancellationToken cancellationToken = default, bool consumer = false)
    {
        ArgumentNullException.ThrowIfNull(connection);
        foreach (var other in OtherTopologyQueues)
        {
            if (await QueueExistsAsync(connection, other, cancellationToken))
                throw TopologyMismatchException.OtherTopology(Topology, other);
        }
        if (consumer && Topology == LaneTopology.QueuePerLane)
        {
            // The first shard past this process's count: if it exists, some producer or consumer of the vhost shards the lane
            // more (its tasks would wait in queues this process never takes).
            foreach (var lane in SessionLanes.All)
            {
                var beyond = Contracts.SessionShards.Queue(lane, ShardsOf(lane));
                if (ShardsOf(lane) < Contracts.SessionShards.Max && await QueueExistsAsync(connection, beyond, cancellationToken))
                    throw TopologyMismatchException.Shards(lane, ShardsOf(lane), beyond);
            }
        }
        await using var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
        await channel.ExchangeDeclareAsync(BrokerNames.TasksExchange, ExchangeType.Direct, durable: true, autoDelete: false, cancellationToken: cancellationToken);
        foreach (var queue in Queues)
        {
            if (queue.ErrorQueue is { } error)
            {
                await DeclareBoundQueueAsync(connection, channel, error, ErrorQueueArguments, cancellationToken);
                await DeclareBrokerDeadLettersAsync(channel, error, cancellationToken);
            }
            await DeclareBoundQueueAsync(connection, channel, queue.Name, queue.Arguments, cancellationToken);
            foreach (var key in queue.RoutingKeys)
                await channel.ExchangeBindAsync(queue.Name, BrokerNames.TasksExchange, key, cancellationToken: cancellationToken);
        }
        // Delayed tasks: the TTL hop queues that hold them, delivering to the lane queues above.
        await DelayTopology.DeclareAsync(connection, channel, Queues, cancellationToken);
    }

    /// <summary>
    /// A dead-letter queue's arguments: a quorum queue (replicated like its lane) without a delivery limit or dead-lettering
    /// of its own, so a dead letter that is looked at many times is never dropped. The consumer's MassTransit bus declares its
    /// <c>_error</c> queues the same way (it would otherwise copy the lane queue's limit).
    /// </summary>
    public IReadOnlyDictionary<string, object?> ErrorQueueArguments =>
        QuorumQueues ? new Dictionary<string, object?> { ["x-queue-type"] = "quorum" } : new Dictionary<string, object?>();

    /// <summary>
    /// The queue of copies the fleet answers broker dead letters from (<see cref="BrokerNames.BrokerDeadLetters"/>), bound to
    /// the <c>_error</c> exchange <paramref name="errorExchange"/>: quorum like the lanes (it exists only with a delivery
    /// limit, which needs quorum queues), one active consumer at a time so each letter is answered by one consumer.
    /// </summary>
    static async Task DeclareBrokerDeadLettersAsync(IChannel channel, string errorExchange, CancellationToken cancellationToken)
    {
        await channel.QueueDeclareAsync(BrokerNames.BrokerDeadLetters, durable: true, exclusive: false, autoDelete: false,
            arguments: new Dictionary<string, object?> { [QueueTypeArgument] = "quorum", ["x-single-active-consumer"] = true }, cancellationToken: cancellationToken);
        await channel.QueueBindAsync(BrokerNames.BrokerDeadLetters, errorExchange, "", cancellationToken: cancellationToken);
    }

    /// <summary>A durable fanout exchange and a durable queue of the same name, bound (MassTransit's receive-queue layout).</summary>
    static async Task DeclareBoundQueueAsync(IConnection connection, IChannel channel, string name, IReadOnlyDictionary<string, object?> arguments, CancellationToken cancellationToken)
    {
        try
        {
            await channel.ExchangeDeclareAsync(name, ExchangeType.Fanout, durable: true, autoDelete: false, cancellationToken: cancellationToken);
        }
        catch (OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == 406)
        {
            throw TopologyMismatchException.Exchange(name, ex);
        }
        try
        {
            await channel.QueueDeclareAsync(name, durable: true, exclusive: false, autoDelete: false,
                arguments: new Dictionary<string, object?>(arguments), cancellationToken: cancellationToken);
        }
        catch (OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == 406)
        {
            throw await TopologyMismatchException.DiagnoseAsync(connection, name, arguments, ex, cancellationToken);
        }
        await channel.QueueBindAsync(name, name, "", cancellationToken: cancellationToken);
    }

    /// <summary>Whether a queue exists (passive declare: needs no permission).</summary>
    static async Task<bool> QueueExistsAsync(IConnection connection, string queue, CancellationToken cancellationToken) =>
        await MessagesInAsync(connection, queue, cancellationToken) is not null;

    /// <summary>The ready messages of <paramref name="queue"/>, or null when it does not exist (asked on a channel of its own: a miss closes it).</summary>
    internal static async Task<uint?> MessagesInAsync(IConnection connection, string queue, CancellationToken cancellationToken)
    {
        await using var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
        try
        {
            return (await channel.QueueDeclarePassiveAsync(queue, cancellationToken)).MessageCount;
        }
        catch (OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == 404)
        {
            return null;
        }
    }
}
