using LaneQueue.Contracts;

namespace LaneQueue.Producer;

/// <summary>A schedule as the fleet knows it now: its definition, since when (added or replaced), whether it is paused.</summary>
public sealed record ScheduleState(TaskSchedule Schedule, DateTimeOffset AddedAt, bool Paused, DateTimeOffset ChangedAt);

/// <summary>A schedule in a listing: its state, its next due time (null while paused) and its last firing (null: none known).</summary>
public sealed record ScheduleInfo(TaskSchedule Schedule, DateTimeOffset AddedAt, bool Paused, DateTimeOffset? NextDue, ScheduleFiring? LastFiring);

/// <summary>
/// The current schedules, folded from the schedule commands (<see cref="FleetCommand.SchedulePut"/> and the others) in
/// any order and any number of times: per schedule id the command with the newest <c>at</c> wins, an equal or older one is
/// ignored (each command arrives through both fleet streams). Thread-safe.
/// </summary>
public sealed class ScheduleTable
{
    readonly Dictionary<string, (ScheduleState? State, DateTimeOffset At)> _byId = new(StringComparer.Ordinal);

    /// <summary>Raised after a command changed the table (outside the lock).</summary>
    public event Action<string>? Changed;

    /// <summary>Applies a schedule command; false when it is not one, or older than what the table has for its id.</summary>
    public bool Apply(FleetCommand command)
    {
        ArgumentNullException.ThrowIfNull(command);
        if (!BrokerNames.IsScheduleCommand(command.Command))
            return false;
        var id = command.Command == FleetCommand.SchedulePut ? command.Schedule?.Id : command.ScheduleId;
        if (string.IsNullOrEmpty(id))
            return false;
        lock (_byId)
        {
            _byId.TryGetValue(id, out var current);
            if (current.At != default && command.At <= current.At)
                return false;
            ScheduleState? next = command.Command switch
            {
                FleetCommand.SchedulePut => new ScheduleState(command.Schedule!, command.At, false, command.At),
                FleetCommand.ScheduleRemove => null,
                FleetCommand.SchedulePause => current.State is { } s ? s with { Paused = true, ChangedAt = command.At } : null,
                _ => current.State is { } s ? s with { Paused = false, ChangedAt = command.At } : null,
            };
            _byId[id] = (next, command.At);
        }
        Changed?.Invoke(id);
        return true;
    }

    /// <summary>The schedules that exist now, by id.</summary>
    public IReadOnlyList<ScheduleState> Current
    {
        get
        {
            lock (_byId)
                return [.. _byId.Values.Where(v => v.State is not null).Select(v => v.State!).OrderBy(s => s.Schedule.Id, StringComparer.Ordinal)];
        }
    }

    public ScheduleState? Get(string id)
    {
        lock (_byId)
            return _byId.TryGetValue(id, out var entry) ? entry.State : null;
    }
}
