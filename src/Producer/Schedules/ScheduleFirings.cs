using LaneQueue.Contracts;

namespace LaneQueue.Producer;

/// <summary>
/// What the fleet monitor fires, as pure functions of the schedule table, the last firing per schedule and the time: the
/// one copy of that decision, used by the consumer's <c>ScheduleFirer</c> (on the fleet), by <c>LaneQueueTestHarness</c>
/// (on its clock) and by listings (<see cref="ScheduleReader"/>), so they cannot disagree. The rules themselves (due times,
/// catch-up, ids) are <see cref="TaskSchedules"/>.
/// </summary>
public static class ScheduleFirings
{
    /// <summary>From when a schedule's due times count: its last firing, unless it was added (or replaced) after that.</summary>
    public static DateTimeOffset Since(ScheduleState state, DateTimeOffset? lastDue)
    {
        ArgumentNullException.ThrowIfNull(state);
        return lastDue is { } fired && fired > state.AddedAt ? fired : state.AddedAt;
    }

    /// <summary>
    /// The firings due at <paramref name="now"/>, schedule by schedule (by id), each schedule's due times in order: per
    /// <see cref="TaskSchedules.DueToFire"/> with the <see cref="TaskSchedules.DefaultGrace"/>, none while paused. Lazy: the
    /// table is looked at again before each firing, so a pause, remove or replace applied while the previous firing was
    /// being published ends the sequence. <paramref name="lastDue"/> gives the last fired due time of a schedule id (null:
    /// none); it is read when a schedule's turn comes, so the caller records each firing before asking for the next.
    /// </summary>
    public static IEnumerable<(TaskSchedule Schedule, DateTimeOffset Due)> Due(ScheduleTable table, Func<string, DateTimeOffset?> lastDue, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(table);
        ArgumentNullException.ThrowIfNull(lastDue);
        foreach (var state in table.Current)
        {
            if (state.Paused)
                continue;
            var id = state.Schedule.Id;
            foreach (var due in TaskSchedules.DueToFire(state.Schedule, Since(state, lastDue(id)), now, TaskSchedules.DefaultGrace, state.ChangedAt))
            {
                // Looked up again: a pause or remove that arrived meanwhile stops the rest.
                if (table.Get(id) is not { Paused: false } current || current.AddedAt != state.AddedAt)
                    yield break;
                yield return (state.Schedule, due);
            }
        }
    }

    /// <summary>The task a firing submits: <see cref="TaskSchedules.FiringTask"/>, created at <paramref name="now"/>.</summary>
    public static ExternalTask TaskFor(TaskSchedule schedule, DateTimeOffset due, DateTimeOffset now) =>
        TaskSchedules.FiringTask(schedule, due) with { CreatedAt = now };

    /// <summary>The record of a firing (<see cref="BrokerNames.SchedulesFired"/> on the fleet; the last one per schedule in a listing).</summary>
    public static ScheduleFiring Record(ExternalTask task, TaskSchedule schedule, DateTimeOffset due, string? consumer, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(task);
        ArgumentNullException.ThrowIfNull(schedule);
        return new ScheduleFiring { ScheduleId = schedule.Id, Due = due, TaskId = task.Id, Consumer = consumer, At = now };
    }

    /// <summary>A schedule's next due time after <paramref name="now"/> (or after its <see cref="Since"/>, when later); null while paused.</summary>
    public static DateTimeOffset? NextDue(ScheduleState state, DateTimeOffset? lastDue, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(state);
        if (state.Paused)
            return null;
        var since = Since(state, lastDue);
        return TaskSchedules.NextDue(state.Schedule, since > now ? since : now);
    }

    /// <summary>A schedule as a listing shows it: its state, next due time and last firing.</summary>
    public static ScheduleInfo Info(ScheduleState state, ScheduleFiring? lastFiring, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(state);
        return new ScheduleInfo(state.Schedule, state.AddedAt, state.Paused, NextDue(state, lastFiring?.Due, now), lastFiring);
    }
}
