using LaneQueue.Contracts;

namespace LaneQueue.Consumer;

/// <summary>
/// What a delivered task waits for before it may start: a token of its lane's and the process's rate limits, then a slot
/// of the process's budget (highest lane first). When no slot is free, lower-lane preemptible work is asked to yield.
/// Which lanes deliver at all is the lane gate's business (<see cref="LaneGate"/>); an operator's pause is checked by the
/// consumer before it gets here.
/// </summary>
internal sealed class TaskAdmission(TaskRateLimits rateLimits, SlotBudget slots, Preemption preemption)
{
    /// <summary>Waits until the task may start; dispose the returned slot when it has finished.</summary>
    public async Task<IDisposable> AdmitAsync(SessionLane lane, CancellationToken cancellationToken)
    {
        await rateLimits.WaitAsync(lane, cancellationToken);
        var slot = slots.AcquireAsync(lane, cancellationToken);
        if (!slot.IsCompleted)
            preemption.SlotContended(lane);
        return await slot;
    }
}
