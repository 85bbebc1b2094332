using LaneQueue.Contracts;

namespace LaneQueue.Consumer;

/// <summary>What this process is running per lane right now, and the ready counts the lane gate last read.</summary>
internal sealed class LaneActivity
{
    readonly int[] _active = new int[SessionLanes.All.Count];

    /// <summary>Ready messages per lane at the broker, as the lane gate last read them (indexed by lane priority).</summary>
    public long[] Ready { get; } = new long[SessionLanes.All.Count];

    /// <summary>Raised when a task starts; the lane gate listens to react at once.</summary>
    public event Action<SessionLane>? TaskStarted;

    public void Started(SessionLane lane)
    {
        Interlocked.Increment(ref _active[(int)lane]);
        TaskStarted?.Invoke(lane);
    }

    public void Finished(SessionLane lane) => Interlocked.Decrement(ref _active[(int)lane]);

    public int Active(SessionLane lane) => Volatile.Read(ref _active[(int)lane]);
}
