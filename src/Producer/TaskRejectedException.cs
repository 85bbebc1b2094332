namespace LaneQueue.Producer;

/// <summary>
/// The broker did not accept a task: it was unroutable (no lane queue bound), nacked, or the broker stayed unreachable past
/// the recovery time-out. From <see cref="LaneQueueProducer.ConnectAsync"/>: the broker cannot be reached, or its lanes
/// differ from the producer's settings (the message names the setting, e.g. <c>LaneQueue:QuorumQueues</c>).
/// </summary>
public sealed class TaskRejectedException : Exception
{
    public TaskRejectedException() { }

    public TaskRejectedException(string message) : base(message) { }

    public TaskRejectedException(string message, Exception innerException) : base(message, innerException) { }
}
