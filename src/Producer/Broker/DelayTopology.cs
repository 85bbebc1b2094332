using System.Text;
using LaneQueue.Contracts;
using RabbitMQ.Client;

namespace LaneQueue.Producer;

/// <summary>
/// The delay tree of delayed tasks (<c>delay_ms</c> / <c>not_before</c>), built from what every RabbitMQ has (no
/// delayed-message plugin): <see cref="Levels"/> hop levels, level k a topic exchange (<see cref="BrokerNames.DelayLevel"/>(k))
/// and a durable quorum queue (<see cref="BrokerNames.DelayQueue"/>(k)) holding its messages <see cref="Base"/> x 2^k
/// (<c>x-message-ttl</c>) and then dead-lettering them, at least once, to level k-1's exchange (level 0: to
/// <see cref="BrokerNames.DelayDeliver"/>). A delay is rounded up to a whole number of <see cref="Base"/> units, whose binary
/// digits (highest level first) lead the routing key, the lane last: <c>0.0.….1.1.0.query</c>. Level k's exchange routes a key
/// whose digit k is 1 to its queue, one whose digit k is 0 on to the next lower level's exchange; the deliver exchange routes
/// <c>#.&lt;lane&gt;</c> to the lane's queue exchange. So a delay is one hop per 1 digit (at most <see cref="Levels"/>), all of
/// it inside the broker, persistent and durable; the message that comes out is the one that went in (body and properties; the
/// broker adds <c>x-death</c> entries, one per hop queue). A hop queue keeps a message until the next queue has confirmed it
/// (<c>x-dead-letter-strategy: at-least-once</c>), so a broker that stops or dies mid-move cannot drop it (classic queues, used
/// up to 1.2, dead-letter at most once and did: <c>DelayTreeCrashTests</c>). The broker holds a task for its delay plus
/// <see cref="Margin"/>, rounded up to <see cref="Base"/>: never early, also counted from the moment the submit's confirm
/// reached the producer (which the task's own trip can beat by a few ms), and at most <see cref="Base"/> + <see cref="Margin"/>
/// (90 ms) late before the hops' own time. Declared with the lane topology (<see cref="LaneQueueTopology.DeclareAsync"/>) by
/// producers and consumers alike.
/// </summary>
internal static class DelayTopology
{
    /// <summary>The shortest hop: delays are rounded up to a multiple of it.</summary>
    public static readonly TimeSpan Base = TimeSpan.FromMilliseconds(50);

    /// <summary>
    /// Added to every delay before it is rounded up: covers the submit's confirm round trip, so a task never starts before its
    /// delay counted from the confirm either (measured: the broker can deliver a task a few ms, and under load tens of ms, before the producer has the confirm).
    /// </summary>
    public static readonly TimeSpan Margin = TimeSpan.FromMilliseconds(40);

    /// <summary>Hop levels: 50 ms x (2^21 - 1) is about 29 hours, above <see cref="TaskParser.MaxDelayMs"/> (20 hours).</summary>
    public const int Levels = 21;

    /// <summary>Where a delayed task is published: the highest level's exchange (it routes down to the first 1 digit).</summary>
    public static string EntryExchange => BrokerNames.DelayLevel(Levels - 1);

    /// <summary>Base units of a delay: with <see cref="Margin"/>, rounded up (never early), at most 2^<see cref="Levels"/> - 1; 0 for none.</summary>
    public static long Units(TimeSpan delay)
    {
        if (delay <= TimeSpan.Zero)
            return 0;
        var units = (long)Math.Ceiling((delay + Margin).TotalMilliseconds / Base.TotalMilliseconds);
        return Math.Min(units, (1L << Levels) - 1);
    }

    /// <summary>How many hop queues a delay passes through (its 1 digits).</summary>
    public static int Hops(TimeSpan delay) => System.Numerics.BitOperations.PopCount((ulong)Units(delay));

    /// <summary>The routing key of a delay in the tree: its binary digits, highest level first, then the lane.</summary>
    public static string RoutingKey(TimeSpan delay, SessionLane lane) => RoutingKey(delay, lane.WireName());

    /// <summary>
    /// The routing key of a delay in the tree, then where the task goes when due: its lane, or its session's shard of the lane
    /// (<c>generate.s03</c>).
    /// </summary>
    public static string RoutingKey(TimeSpan delay, string laneKey)
    {
        var units = Units(delay);
        var key = new StringBuilder(Levels * 2 + 10);
        for (var level = Levels - 1; level >= 0; level--)
            key.Append((units >> level & 1) == 1 ? '1' : '0').Append('.');
        return key.Append(laneKey).ToString();
    }

    /// <summary>The queue TTL of a level: <see cref="Base"/> x 2^level, in milliseconds.</summary>
    public static long TtlMs(int level) => (long)Base.TotalMilliseconds << level;

    /// <summary>The digit of <paramref name="level"/> in a routing key, as a topic pattern: that many words skipped from the left.</summary>
    public static string Pattern(int level, char digit) => string.Concat(Enumerable.Repeat("*.", Levels - 1 - level)) + digit + ".#";

    /// <summary>
    /// The arguments of a level's queue: a quorum queue, its TTL, then the next lower level (or the deliver exchange), dead-lettered
    /// at least once (which needs <c>reject-publish</c> overflow; the queues have no length limit, so it never rejects).
    /// </summary>
    public static IReadOnlyDictionary<string, object?> QueueArguments(int level) => new Dictionary<string, object?>
    {
        ["x-queue-type"] = "quorum",
        ["x-message-ttl"] = TtlMs(level),
        ["x-dead-letter-exchange"] = level == 0 ? BrokerNames.DelayDeliver : BrokerNames.DelayLevel(level - 1),
        ["x-dead-letter-strategy"] = "at-least-once",
        ["x-overflow"] = "reject-publish",
    };

    /// <summary>
    /// Declares the tree (idempotent), binds its deliver exchange to the lane queues' exchanges and retires the classic hop queues
    /// of 1.2 and earlier (<see cref="RetireClassicQueuesAsync"/>).
    /// </summary>
    public static async Task DeclareAsync(IConnection connection, IChannel channel, IReadOnlyList<LaneReceiveQueue> laneQueues, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(channel);
        ArgumentNullException.ThrowIfNull(laneQueues);
        await channel.ExchangeDeclareAsync(BrokerNames.DelayDeliver, ExchangeType.Topic, durable: true, autoDelete: false, cancellationToken: cancellationToken);
        foreach (var queue in laneQueues)
        {
            // A due task goes to its lane's queue, or to its session's shard when it entered the tree with the shard's key.
            foreach (var key in queue.RoutingKeys)
                await channel.ExchangeBindAsync(queue.Name, BrokerNames.DelayDeliver, "#." + key, cancellationToken: cancellationToken);
        }
        for (var level = 0; level < Levels; level++)
        {
            var name = BrokerNames.DelayLevel(level);
            await channel.ExchangeDeclareAsync(name, ExchangeType.Topic, durable: true, autoDelete: false, cancellationToken: cancellationToken);
            var queue = BrokerNames.DelayQueue(level);
            await channel.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false,
                arguments: new Dictionary<string, object?>(QueueArguments(level)), cancellationToken: cancellationToken);
            await channel.QueueBindAsync(queue, name, Pattern(level, '1'), cancellationToken: cancellationToken);
            await channel.ExchangeBindAsync(level == 0 ? BrokerNames.DelayDeliver : BrokerNames.DelayLevel(level - 1), name, Pattern(level, '0'),
                cancellationToken: cancellationToken);
        }
        await RetireClassicQueuesAsync(connection, channel, cancellationToken);
    }

    /// <summary>
    /// The classic hop queues of LaneQueue 1.2 and earlier, named like their level's exchange: unbound from it (new delayed tasks
    /// go to the quorum queues only), left to run out (their tasks still come due through the same exchanges) and deleted once
    /// empty. Nothing to do on a vhost that never had them.
    /// </summary>
    static async Task RetireClassicQueuesAsync(IConnection connection, IChannel channel, CancellationToken cancellationToken)
    {
        for (var level = 0; level < Levels; level++)
        {
            var classic = BrokerNames.DelayLevel(level);
            if (await LaneQueueTopology.MessagesInAsync(connection, classic, cancellationToken) is not { } messages)
                continue;
            await channel.QueueUnbindAsync(classic, classic, Pattern(level, '1'), cancellationToken: cancellationToken);
            if (messages == 0)
                await channel.QueueDeleteAsync(classic, ifUnused: false, ifEmpty: true, cancellationToken: cancellationToken);
        }
    }

    /// <summary>
    /// Properties for a task entering the tree: <paramref name="properties"/> with <see cref="BrokerNames.DueHeader"/> set and any
    /// <c>x-death</c> history removed (RabbitMQ drops a message dead-lettered into a queue its <c>x-death</c> already names, as a
    /// cycle: a second trip through the tree would otherwise be lost).
    /// </summary>
    public static BasicProperties Entering(BasicProperties properties, DateTimeOffset due)
    {
        ArgumentNullException.ThrowIfNull(properties);
        var headers = properties.Headers is { } existing ? new Dictionary<string, object?>(existing) : new Dictionary<string, object?>();
        foreach (var key in headers.Keys.Where(k => k == "x-death" || k.StartsWith("x-first-death-", StringComparison.Ordinal) || k.StartsWith("x-last-death-", StringComparison.Ordinal)).ToList())
            headers.Remove(key);
        headers[BrokerNames.DueHeader] = due.ToUnixTimeMilliseconds();
        properties.Headers = headers;
        return properties;
    }

    /// <summary>The due time a delivery carries in <see cref="BrokerNames.DueHeader"/>, or null.</summary>
    public static DateTimeOffset? DueOf(IDictionary<string, object?>? headers) =>
        BrokerDeath.Number(headers, BrokerNames.DueHeader) is { } ms ? DateTimeOffset.FromUnixTimeMilliseconds(ms) : null;
}
