using LaneQueue.Contracts;

namespace LaneQueue.Consumer;

/// <summary>
/// What a delivered task waits for before it may start: a token of its lane's and the process's rate limits, the lane's
/// fleet-wide limits (<see cref="FleetLimits"/>: a running token held while it runs, a start token spent), then a slot of the
/// process's budget (highest lane first). When no slot is free, lower-lane preemptible work is asked to yield. Which lanes
/// deliver at all is the lane gate's business (<see cref="LaneGate"/>); an operator's pause is checked by the consumer before
/// it gets here.
/// </summary>
internal sealed class TaskAdmission(TaskRateLimits rateLimits, FleetLimits fleetLimits, SlotBudget slots, Preemption preemption)
{
    /// <summary>Waits until the task may start; dispose the returned lease when it has finished (slot and fleet token).</summary>
    public async Task<IAsyncDisposable> AdmitAsync(SessionLane lane, CancellationToken cancellationToken)
    {
        await rateLimits.WaitAsync(lane, cancellationToken);
        var fleet = await fleetLimits.AdmitAsync(lane, cancellationToken);
        try
        {
            var slot = slots.AcquireAsync(lane, cancellationToken);
            if (!slot.IsCompleted)
                preemption.SlotContended(lane);
            return new Admitted(await slot, fleet);
        }
        catch
        {
            await fleet.DisposeAsync();
            throw;
        }
    }

    sealed class Admitted(IDisposable slot, IAsyncDisposable fleet) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            slot.Dispose();
            await fleet.DisposeAsync();
        }
    }
}
