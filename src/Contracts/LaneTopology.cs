namespace LaneQueue.Contracts;

/// <summary>How the lanes map to broker queues; producers and consumers of one vhost must agree on it.</summary>
public enum LaneTopology
{
    /// <summary>One durable queue per lane; each consumer's scheduler gives a free slot to the highest lane that can start now.</summary>
    QueuePerLane,

    /// <summary>One classic queue with x-max-priority = 4; lane = message priority; prefetch = slot budget.</summary>
    PriorityQueue,
}
