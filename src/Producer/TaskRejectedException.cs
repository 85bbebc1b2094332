namespace LaneQueue.Producer;

/// <summary>The broker did not accept a task: it was unroutable (no lane queue bound) or nacked.</summary>
public sealed class TaskRejectedException : Exception
{
    public TaskRejectedException() { }

    public TaskRejectedException(string message) : base(message) { }

    public TaskRejectedException(string message, Exception innerException) : base(message, innerException) { }
}
