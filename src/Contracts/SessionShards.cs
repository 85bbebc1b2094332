using System.Globalization;
using System.Text;

namespace LaneQueue.Contracts;

/// <summary>
/// Session shards: a lane may be split into <c>N</c> extra queues by session (<c>lanequeue.&lt;lane&gt;.sNN</c>, routing key
/// <c>&lt;lane&gt;.sNN</c>), so one session's backlog waits in its own shard and another session's tasks are delivered at once
/// beside it; consumers take every shard of the lane and give its slots to the sessions in turn. A task with a session goes
/// to shard <see cref="Of"/> (FNV-1a, 32 bits, of the session id's UTF-8 bytes, modulo <c>N</c>); a task without one, or
/// published with routing key = lane, goes to the lane's own queue as always.
/// </summary>
public static class SessionShards
{
    /// <summary>Most shards a lane may have.</summary>
    public const int Max = 64;

    /// <summary>The shard of <paramref name="sessionId"/> among <paramref name="shards"/>: FNV-1a (32-bit) of its UTF-8 bytes, modulo.</summary>
    public static int Of(string sessionId, int shards)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        ArgumentOutOfRangeException.ThrowIfLessThan(shards, 1);
        var hash = 2166136261u;
        foreach (var b in Encoding.UTF8.GetBytes(sessionId))
        {
            hash ^= b;
            hash *= 16777619u;
        }
        return (int)(hash % (uint)shards);
    }

    /// <summary>The queue of a shard, e.g. <c>lanequeue.generate.s03</c>.</summary>
    public static string Queue(SessionLane lane, int shard) => $"{BrokerNames.LaneQueue(lane)}.s{shard.ToString("00", CultureInfo.InvariantCulture)}";

    /// <summary>The routing key of a shard on <see cref="BrokerNames.TasksExchange"/>, e.g. <c>generate.s03</c>.</summary>
    public static string RoutingKey(SessionLane lane, int shard) => $"{lane.WireName()}.s{shard.ToString("00", CultureInfo.InvariantCulture)}";

    /// <summary>Where a task of <paramref name="lane"/> is published: its session's shard, or the lane when it has no session or the lane no shards.</summary>
    public static string RoutingKeyFor(SessionLane lane, string? sessionId, int shards) =>
        shards > 0 && !string.IsNullOrEmpty(sessionId) ? RoutingKey(lane, Of(sessionId, shards)) : BrokerNames.RoutingKey(lane);

    /// <summary>The lane whose shard queue is named <paramref name="queue"/>, or null when it is no shard queue.</summary>
    public static SessionLane? LaneOf(string queue)
    {
        ArgumentNullException.ThrowIfNull(queue);
        var dot = queue.LastIndexOf(".s", StringComparison.Ordinal);
        if (dot < 0 || queue.Length - dot != 4 || !char.IsAsciiDigit(queue[^1]) || !char.IsAsciiDigit(queue[^2]))
            return null;
        var lanePart = queue[..dot];
        return SessionLanes.All.Cast<SessionLane?>().FirstOrDefault(lane => BrokerNames.LaneQueue(lane!.Value) == lanePart);
    }
}
