namespace LaneQueue.Contracts;

/// <summary>
/// Every name LaneQueue uses on the broker, in one place. Producers publish to <see cref="TasksExchange"/>
/// with the lane name as routing key; results come back on <see cref="ResultsExchange"/> with the task id
/// as routing key.
/// </summary>
public static class BrokerNames
{
    public const string Prefix = "lanequeue";

    /// <summary>Direct exchange every producer publishes tasks to; routing key = lane name.</summary>
    public const string TasksExchange = "lanequeue.tasks";

    /// <summary>Topic exchange of <see cref="ExternalTaskResult"/>s; routing key = task id (bind <c>#</c> for all).</summary>
    public const string ResultsExchange = "lanequeue.results";

    /// <summary>The single queue of the priority-queue topology.</summary>
    public const string PriorityQueue = "lanequeue.priority";

    public static string RoutingKey(SessionLane lane) => lane.WireName();

    /// <summary>The durable queue of a lane in the queue-per-lane topology, e.g. <c>lanequeue.query</c>.</summary>
    public static string LaneQueue(SessionLane lane) => $"{Prefix}.{lane.WireName()}";

    /// <summary>Where a queue's dead letters go (MassTransit's error-queue convention), e.g. <c>lanequeue.query_error</c>.</summary>
    public static string DeadLetterQueue(string queue) => queue + "_error";

    /// <summary>The reason a message was dead-lettered (MassTransit's fault header).</summary>
    public const string ReasonHeader = "MT-Fault-Message";
}
