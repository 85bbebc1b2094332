using LaneQueue.Contracts;

namespace LaneQueue.Consumer;

/// <summary>
/// The token queues of one lane's fleet limits, and their arguments (one definition for every consumer; the broker refuses
/// a declaration with other values, which is how a consumer with a different limit is caught).
/// <list type="bullet">
/// <item><c>lanequeue.limits.&lt;lane&gt;.running</c>: <c>MaxConcurrency</c> tokens. A consumer takes one before a task
/// starts and holds it unacked while the task runs; it rejects it with requeue when the task has ended. The broker gives a
/// dead consumer's unacked tokens back when its connection closes.</item>
/// <item><c>lanequeue.limits.&lt;lane&gt;.starts</c>: <c>RateLimit:MaxOperations</c> tokens. A start takes one and
/// rejects it without requeue: the queue dead-letters it into <c>.starts.cooling</c>, whose message TTL (the period)
/// dead-letters it back. A token spent is so unavailable for exactly one period: at most MaxOperations starts in any window
/// of one period, fleet-wide, with nobody refilling.</item>
/// </list>
/// Both cap their ready messages at the token count (<c>x-max-length</c>, <c>x-overflow: reject-publish</c>), which is also
/// the argument a differently configured consumer trips over.
/// </summary>
internal static class FleetLimitQueues
{
    public static string Running(SessionLane lane) => $"{BrokerNames.Prefix}.limits.{lane.WireName()}.running";

    public static string Starts(SessionLane lane) => $"{BrokerNames.Prefix}.limits.{lane.WireName()}.starts";

    public static string Cooling(SessionLane lane) => Starts(lane) + ".cooling";

    /// <summary>Exclusive queue that one consumer at a time holds while it creates and fills a token queue.</summary>
    public static string SetupLock(string tokenQueue) => tokenQueue + ".setup";

    public static Dictionary<string, object?> RunningArguments(int tokens, bool quorum) => With(quorum, new()
    {
        ["x-max-length"] = tokens,
        ["x-overflow"] = "reject-publish",
    });

    public static Dictionary<string, object?> StartsArguments(SessionLane lane, int tokens, bool quorum) => With(quorum, new()
    {
        ["x-max-length"] = tokens,
        ["x-overflow"] = "reject-publish",
        ["x-dead-letter-exchange"] = "",
        ["x-dead-letter-routing-key"] = Cooling(lane),
    });

    public static Dictionary<string, object?> CoolingArguments(SessionLane lane, TimeSpan period, bool quorum) => With(quorum, new()
    {
        ["x-message-ttl"] = (long)period.TotalMilliseconds,
        ["x-dead-letter-exchange"] = "",
        ["x-dead-letter-routing-key"] = Starts(lane),
    });

    static Dictionary<string, object?> With(bool quorum, Dictionary<string, object?> arguments)
    {
        if (quorum)
            arguments["x-queue-type"] = "quorum";
        return arguments;
    }
}
