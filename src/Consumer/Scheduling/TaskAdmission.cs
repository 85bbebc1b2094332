using LaneQueue.Contracts;

namespace LaneQueue.Consumer;

/// <summary>
/// What a delivered task waits for before it may start: a token of its lane's and the process's rate limits, the lane's
/// fleet-wide limits (<see cref="FleetLimits"/>: a running token held while it runs, a start token spent), then a slot
/// (<see cref="LaneSlots"/>: the scheduler gives a free slot to the highest lane that can start now). While it waits for a
/// token its lane counts as unable to start, so the scheduler holds no slot for that lane's work at the broker.
/// </summary>
internal sealed class TaskAdmission(TaskRateLimits rateLimits, FleetLimits fleetLimits, LaneSlots slots)
{
    /// <summary>
    /// Waits until the task may start; dispose the returned lease when its handler has returned (slot and fleet token).
    /// <paramref name="arrival"/> (<see cref="LaneSlots.Arriving"/>) ends as the task starts to wait for its slot (while it
    /// waits for a token its lane counts as blocked, which passes its turn). <paramref name="session"/>: the task's
    /// <c>session_id</c>; the sessions of a lane take turns for its slots.
    /// </summary>
    public async Task<Admitted> AdmitAsync(SessionLane lane, CancellationToken cancellationToken, IDisposable? arrival = null, string? session = null)
    {
        IAsyncDisposable fleet = FleetLimits.NoTokens;
        if (rateLimits.Limits(lane) || fleetLimits.Limits(lane))
        {
            // Only a lane with a limit is ever marked blocked: marked for a lane without one, the moment between this and
            // AcquireAsync was enough for a free slot to pass the lane's turn (and its ready work at the broker) to a lower lane.
            using (slots.Blocking(lane))
            {
                await rateLimits.WaitAsync(lane, cancellationToken);
                fleet = await fleetLimits.AdmitAsync(lane, cancellationToken);
            }
        }
        try
        {
            return new Admitted(await slots.AcquireAsync(lane, cancellationToken, arrival, session), fleet);
        }
        catch
        {
            await fleet.DisposeAsync();
            throw;
        }
    }

    /// <summary>A delivery of the lane is being read before it waits here (<see cref="LaneSlots.Arriving"/>); pass it to <see cref="AdmitAsync"/>.</summary>
    public IDisposable Arriving(SessionLane lane) => slots.Arriving(lane);

    /// <summary>An admitted task's slot and fleet token, given back together.</summary>
    public sealed class Admitted(LaneSlots.Slot slot, IAsyncDisposable fleet) : IAsyncDisposable
    {
        /// <summary>Keeps the task counted against its session's limit until the handle is disposed (<see cref="LaneSlots.Slot.KeepSession"/>).</summary>
        public IDisposable KeepSession() => slot.KeepSession();

        public async ValueTask DisposeAsync()
        {
            slot.Dispose();
            await fleet.DisposeAsync();
        }
    }
}
