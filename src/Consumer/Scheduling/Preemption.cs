using LaneQueue.Contracts;
using Microsoft.Extensions.Logging;

namespace LaneQueue.Consumer;

/// <summary>
/// Cooperative preemption: when a task has to wait for a slot because the budget is full, the lowest-lane running task
/// below it that is marked preemptible is asked to yield (<see cref="TaskContext.YieldRequested"/>). A handler that yields
/// returns a checkpoint and its task goes back to its lane; one that ignores the request simply finishes.
/// </summary>
internal sealed class Preemption(SlotBudget slots, RunningTasks running, ILogger<Preemption> logger)
{
    /// <summary>A task of <paramref name="waiting"/> found no free slot.</summary>
    public void SlotContended(SessionLane waiting)
    {
        if (slots.InUse < slots.Capacity)
            return;
        if (running.RequestYieldBelow(waiting) is { } victim)
            Log.YieldRequested(logger, victim.Id, victim.Lane.WireName(), waiting.WireName());
    }
}
