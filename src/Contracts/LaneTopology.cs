namespace LaneQueue.Contracts;

/// <summary>How the lanes map to broker queues; producers and consumers of one vhost must agree on it.</summary>
public enum LaneTopology
{
    /// <summary>One durable queue per lane; the lane gate pauses lower lanes while higher lanes have ready messages.</summary>
    QueuePerLane,

    /// <summary>One classic queue with x-max-priority = 4; lane = message priority; prefetch = slot budget.</summary>
    PriorityQueue,
}
