using System.Collections.Concurrent;
using LaneQueue.Contracts;

namespace LaneQueue.Consumer;

/// <summary>The tasks this process is running, each with the tokens that cancel it or ask it to yield.</summary>
internal sealed class RunningTasks
{
    public sealed class Run(ExternalTask task) : IDisposable
    {
        public ExternalTask Task { get; } = task;
        public CancellationTokenSource Cancel { get; } = new();
        public CancellationTokenSource Yield { get; } = new();
        public DateTimeOffset StartedAt { get; } = DateTimeOffset.UtcNow;

        public void Dispose()
        {
            Cancel.Dispose();
            Yield.Dispose();
        }
    }

    readonly ConcurrentDictionary<string, Run> _runs = new(StringComparer.Ordinal);

    public int Count => _runs.Count;

    /// <summary>Registers a run; null when a task with this id is already running here.</summary>
    public Run? TryStart(ExternalTask task)
    {
        ArgumentNullException.ThrowIfNull(task);
        var run = new Run(task);
        if (_runs.TryAdd(task.Id, run))
            return run;
        run.Dispose();
        return null;
    }

    public void Finish(Run run)
    {
        ArgumentNullException.ThrowIfNull(run);
        _runs.TryRemove(new KeyValuePair<string, Run>(run.Task.Id, run));
        run.Dispose();
    }

    /// <summary>Fires the cancellation token of every running task the predicate picks; returns how many.</summary>
    public int CancelWhere(Func<ExternalTask, bool> predicate)
    {
        ArgumentNullException.ThrowIfNull(predicate);
        var count = 0;
        foreach (var run in _runs.Values)
        {
            if (!predicate(run.Task))
                continue;
            try
            {
                run.Cancel.Cancel();
                count++;
            }
            catch (ObjectDisposedException)
            {
                // finished meanwhile
            }
        }
        return count;
    }

    /// <summary>
    /// A session interrupt: every task of <paramref name="sessionId"/> that started here by <paramref name="issuedAt"/> is
    /// cancelled (<paramref name="cancel"/>), or, when preemptible, asked to yield (a non-preemptible one runs on). Tasks that
    /// start after the interrupt (a yielded task resuming) are left alone. Returns how many were asked.
    /// </summary>
    public int Interrupt(string sessionId, DateTimeOffset issuedAt, bool cancel)
    {
        ArgumentException.ThrowIfNullOrEmpty(sessionId);
        var count = 0;
        foreach (var run in _runs.Values)
        {
            if (run.Task.SessionId != sessionId || run.StartedAt > issuedAt || (!cancel && !run.Task.Preemptible)
                || run.Task.CommandType == InterruptSessionHandler.CommandType) // not the interrupt itself, sent from the session
                continue;
            try
            {
                (cancel ? run.Cancel : run.Yield).Cancel();
                count++;
            }
            catch (ObjectDisposedException)
            {
                // finished meanwhile
            }
        }
        return count;
    }

    /// <summary>
    /// Asks the lowest-lane preemptible task below <paramref name="lane"/> to yield (the newest of that lane, which has the
    /// least work to lose). Returns the task asked, or null when none qualifies or one was already asked.
    /// </summary>
    public ExternalTask? RequestYieldBelow(SessionLane lane)
    {
        var candidates = _runs.Values.Where(r => r.Task.Preemptible && r.Task.Lane > lane).ToList();
        if (candidates.Any(r => r.Yield.IsCancellationRequested))
            return null;
        var victim = candidates.OrderByDescending(r => r.Task.Lane).ThenByDescending(r => r.StartedAt).FirstOrDefault();
        if (victim is null)
            return null;
        try
        {
            victim.Yield.Cancel();
            return victim.Task;
        }
        catch (ObjectDisposedException)
        {
            return null;
        }
    }
}
