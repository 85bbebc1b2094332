using LaneQueue.Contracts;
using LaneQueue.Producer;

namespace LaneQueue.Consumer.Testing;

/// <summary>
/// Recurring schedules on the harness's clock (<see cref="TimeProvider"/>): the producer's add, list, pause, resume and remove,
/// folded into a <see cref="ScheduleTable"/> as the fleet folds the schedule commands, and fired as the fleet monitor
/// fires them: <see cref="ScheduleFirings"/> decides the due times (catch-up and grace included) and builds each firing's
/// task, which is submitted here like any other. Instead of the monitor's 100 ms loop, a timer on the clock wakes at the
/// next due time (and each command looks at once), so advancing a fake clock past due times fires them, and a jump
/// fires what a monitor that was away for that long would fire.
/// </summary>
public sealed partial class LaneQueueTestHarness
{
    readonly object _scheduleLock = new();
    readonly ScheduleTable _schedules = new();
    readonly Dictionary<string, ScheduleFiring> _lastFirings = new(StringComparer.Ordinal);
    ITimer? _scheduleTimer;
    DateTimeOffset _lastScheduleCommandAt;

    /// <summary>
    /// Adds a recurring schedule, or replaces the one with its id, as the producer does (validated with the harness's
    /// <see cref="LaneQueueOptions.MaxPayloadBytes"/>); it fires from its first due time after now on the harness's clock.
    /// </summary>
    /// <exception cref="InvalidScheduleException">The schedule is invalid; names the field (e.g. <c>cron</c>, <c>time_zone</c>).</exception>
    public Task AddScheduleAsync(TaskSchedule schedule, CancellationToken cancellationToken = default) =>
        ApplyScheduleCommand(ScheduleCommands.Put(schedule, _settings.MaxPayloadBytes), cancellationToken);

    /// <summary>Pauses a schedule: no firings until <see cref="ResumeScheduleAsync"/>. An unknown id changes nothing, as on the fleet.</summary>
    public Task PauseScheduleAsync(string scheduleId, CancellationToken cancellationToken = default) =>
        ApplyScheduleCommand(ScheduleCommands.For(FleetCommand.SchedulePause, scheduleId), cancellationToken);

    /// <summary>Resumes a paused schedule; the due times missed meanwhile follow its catch-up policy (<c>skip</c>: none; <c>once</c>: the latest).</summary>
    public Task ResumeScheduleAsync(string scheduleId, CancellationToken cancellationToken = default) =>
        ApplyScheduleCommand(ScheduleCommands.For(FleetCommand.ScheduleResume, scheduleId), cancellationToken);

    /// <summary>Removes a schedule (its firings already submitted still run).</summary>
    public Task RemoveScheduleAsync(string scheduleId, CancellationToken cancellationToken = default) =>
        ApplyScheduleCommand(ScheduleCommands.For(FleetCommand.ScheduleRemove, scheduleId), cancellationToken);

    /// <summary>The schedules by id, with their next due time (on the harness's clock) and their last firing.</summary>
    public Task<IReadOnlyList<ScheduleInfo>> ListSchedulesAsync(CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        lock (_scheduleLock)
        {
            var now = _time.GetUtcNow();
            return Task.FromResult<IReadOnlyList<ScheduleInfo>>(
                [.. _schedules.Current.Select(s => ScheduleFirings.Info(s, _lastFirings.GetValueOrDefault(s.Schedule.Id), now))]);
        }
    }

    /// <summary>Applies a schedule command stamped with the harness's clock, then fires what is due now and sets the timer.</summary>
    Task ApplyScheduleCommand(FleetCommand command, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        lock (_lock)
            ObjectDisposedException.ThrowIf(_disposed, this);
        lock (_scheduleLock)
        {
            // The newest command per schedule wins: two commands at the same instant of a fake clock keep their order.
            var now = _time.GetUtcNow();
            _lastScheduleCommandAt = now > _lastScheduleCommandAt ? now : _lastScheduleCommandAt.AddTicks(1);
            _schedules.Apply(command with { At = _lastScheduleCommandAt });
            _scheduleTimer ??= _time.CreateTimer(_ => FireDueSchedules(), null, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        }
        FireDueSchedules();
        return Task.CompletedTask;
    }

    /// <summary>
    /// The monitor's tick: submits a task for each due firing (<see cref="ScheduleFirings.Due"/>), records it as the last
    /// firing of its schedule, then sets the timer to the earliest next due time.
    /// </summary>
    void FireDueSchedules()
    {
        lock (_scheduleLock)
        {
            if (_disposing.IsCancellationRequested || _scheduleTimer is null)
                return;
            var now = _time.GetUtcNow();
            foreach (var (schedule, due) in ScheduleFirings.Due(_schedules, LastDueLocked, now))
            {
                var task = ScheduleFirings.TaskFor(schedule, due, now);
                try
                {
                    SubmitTaskAsync(task).GetAwaiter().GetResult(); // synchronous in the harness
                }
                catch (ObjectDisposedException)
                {
                    return; // disposed meanwhile
                }
                _lastFirings[schedule.Id] = ScheduleFirings.Record(task, schedule, due, _settings.ConsumerName, now);
            }
            var next = _schedules.Current
                .Select(s => ScheduleFirings.NextDue(s, LastDueLocked(s.Schedule.Id), now))
                .Where(d => d is not null)
                .Min();
            // A timer may wake a moment early on the system clock: the next tick then finds nothing due and sets it again.
            _scheduleTimer.Change(next is { } at ? Max(at - now, TimeSpan.FromMilliseconds(1)) : Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        }
    }

    DateTimeOffset? LastDueLocked(string scheduleId) => _lastFirings.TryGetValue(scheduleId, out var last) ? last.Due : null;

    static TimeSpan Max(TimeSpan a, TimeSpan b) => a > b ? a : b;

    /// <summary>Stops the schedule timer (on dispose).</summary>
    void StopSchedules()
    {
        lock (_scheduleLock)
        {
            _scheduleTimer?.Dispose();
            _scheduleTimer = null;
        }
    }
}
