using System.Collections.Concurrent;
using LaneQueue.Contracts;

namespace LaneQueue.Consumer;

/// <summary>
/// What this consumer knows about task ids across the fleet: which ones completed or are running (from its own
/// runs and the fleet's <c>command.*</c> events), and which were cancelled (from fleet commands). Entries are kept
/// for <see cref="Window"/>; this is the de-duplication window of the delivery guarantee.
/// </summary>
internal sealed class TaskLedger(TimeProvider clock)
{
    public static readonly TimeSpan Window = TimeSpan.FromMinutes(10);
    const int MaxEntries = 200_000;

    public enum Known
    {
        Unknown,
        Running,
        Completed,
    }

    public sealed record Entry(Known State, string? Consumer, DateTimeOffset At);

    readonly ConcurrentDictionary<string, Entry> _ids = new(StringComparer.Ordinal);
    readonly ConcurrentDictionary<string, DateTimeOffset> _cancelledIds = new(StringComparer.Ordinal);
    readonly ConcurrentDictionary<string, DateTimeOffset> _cancelledSessions = new(StringComparer.Ordinal);
    readonly ConcurrentDictionary<UInt128, (string? Reason, DateTimeOffset At)> _answered = new();

    public TaskLedger() : this(TimeProvider.System) { }

    public Entry? Lookup(string taskId)
    {
        if (!_ids.TryGetValue(taskId, out var entry))
            return null;
        if (clock.GetUtcNow() - entry.At <= Window)
            return entry;
        _ids.TryRemove(taskId, out _);
        return null;
    }

    /// <summary>
    /// Whether a delivery must not run: its id completed within the window, or is running now (unless the delivery is a
    /// redelivery: then the first run's consumer lost it, and it must run again).
    /// </summary>
    public bool IsDuplicate(string taskId, bool redelivered, out Entry? first)
    {
        first = Lookup(taskId);
        return first is { State: Known.Completed } || (first is { State: Known.Running } && !redelivered);
    }

    public void Record(string taskId, Known state, string? consumer)
    {
        if (_ids.Count >= MaxEntries)
            Trim();
        if (state == Known.Unknown)
            _ids.TryRemove(taskId, out _);
        else
            _ids[taskId] = new Entry(state, consumer, clock.GetUtcNow());
    }

    /// <summary>
    /// Remembers that the message whose body hashes to <paramref name="digest"/> was answered (result and terminal event
    /// published) and dead-lettered, so that a redelivered copy is not answered again; with the <paramref name="reason"/>
    /// it was dead-lettered for when the consumer itself failed it (a copy is then dead-lettered again without running).
    /// At most <see cref="MaxAnswered"/> entries of <see cref="Window"/>: about 100 bytes each, plus the reasons kept.
    /// </summary>
    public void RecordAnswered(UInt128 digest, string? reason)
    {
        if (_answered.Count >= MaxAnswered)
            TrimAnswered();
        _answered[digest] = (reason is { Length: > 1000 } ? reason[..1000] : reason, clock.GetUtcNow());
    }

    /// <summary>Whether the message whose body hashes to <paramref name="digest"/> was answered within the window, and why it was dead-lettered.</summary>
    public bool WasAnswered(UInt128 digest, out string? reason)
    {
        reason = null;
        if (!_answered.TryGetValue(digest, out var answered) || clock.GetUtcNow() - answered.At > Window)
            return false;
        reason = answered.Reason;
        return true;
    }

    const int MaxAnswered = 100_000;

    void TrimAnswered()
    {
        var cutoff = clock.GetUtcNow() - Window;
        foreach (var (digest, answered) in _answered)
        {
            if (answered.At < cutoff)
                _answered.TryRemove(digest, out _);
        }
        foreach (var (digest, _) in _answered.OrderBy(kv => kv.Value.At).Take(Math.Max(0, _answered.Count - MaxAnswered * 9 / 10)))
            _answered.TryRemove(digest, out _);
    }

    /// <summary>Applies a fleet command; returns true when it was a cancellation.</summary>
    public bool Apply(FleetCommand command)
    {
        ArgumentNullException.ThrowIfNull(command);
        if (command.Command != FleetCommand.Cancel)
            return false;
        if (command.TaskId is { Length: > 0 } id)
            _cancelledIds[id] = command.At;
        if (command.SessionId is { Length: > 0 } session)
            _cancelledSessions[session] = command.At;
        return true;
    }

    /// <summary>A task is cancelled when a cancel for its id or session was issued after it was created.</summary>
    public bool IsCancelled(ExternalTask task)
    {
        ArgumentNullException.ThrowIfNull(task);
        return (_cancelledIds.TryGetValue(task.Id, out var at) && task.CreatedAt <= at)
            || (task.SessionId is { } session && _cancelledSessions.TryGetValue(session, out var sessionAt) && task.CreatedAt <= sessionAt);
    }

    void Trim()
    {
        var cutoff = clock.GetUtcNow() - Window;
        foreach (var (id, entry) in _ids)
        {
            if (entry.At < cutoff)
                _ids.TryRemove(id, out _);
        }
        if (_ids.Count < MaxEntries)
            return;
        foreach (var (id, _) in _ids.OrderBy(kv => kv.Value.At).Take(MaxEntries / 10))
            _ids.TryRemove(id, out _);
    }
}
