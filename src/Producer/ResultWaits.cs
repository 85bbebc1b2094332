using LaneQueue.Contracts;

namespace LaneQueue.Producer;

/// <summary>
/// Who waits for which task's result (<see cref="ILaneQueueProducer.WatchResultAsync"/>): one completion per task id,
/// shared by every wait on it and counted, so a <c>SubmitAndWaitAsync</c> and a <c>WatchTaskAsync</c> of the same task can run
/// together and the id is forgotten only when the last of them stops. Shared by the producer and the test harness.
/// </summary>
internal sealed class ResultWaits
{
    readonly Lock _lock = new();
    readonly Dictionary<string, Wait> _byId = new(StringComparer.Ordinal);

    sealed class Wait
    {
        public readonly TaskCompletionSource<ExternalTaskResult> Completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public int Count;
    }

    /// <summary>Adds a wait on <paramref name="taskId"/>; <c>First</c>: nobody waited for it (the producer binds the id then).</summary>
    public (Task<ExternalTaskResult> Result, bool First) Add(string taskId)
    {
        lock (_lock)
        {
            var first = !_byId.TryGetValue(taskId, out var wait);
            if (first)
                _byId[taskId] = wait = new Wait();
            wait!.Count++;
            return (wait.Completion.Task, first);
        }
    }

    /// <summary>Ends one wait on <paramref name="taskId"/>; true when it was the last (the producer unbinds the id then).</summary>
    public bool Remove(string taskId)
    {
        lock (_lock)
        {
            if (!_byId.TryGetValue(taskId, out var wait))
                return false;
            if (--wait.Count > 0)
                return false;
            _byId.Remove(taskId);
            return true;
        }
    }

    /// <summary>Hands <paramref name="result"/> to every wait on its task; <paramref name="forget"/>: drop the id too (later waits wait for a new result).</summary>
    public void Complete(ExternalTaskResult result, bool forget)
    {
        Wait? wait;
        lock (_lock)
        {
            if (!_byId.TryGetValue(result.TaskId, out wait))
                return;
            if (forget)
                _byId.Remove(result.TaskId);
        }
        wait.Completion.TrySetResult(result);
    }

    /// <summary>Cancels and forgets every wait (the harness is disposed).</summary>
    public void CancelAll()
    {
        List<Wait> waits;
        lock (_lock)
        {
            waits = [.. _byId.Values];
            _byId.Clear();
        }
        foreach (var wait in waits)
            wait.Completion.TrySetCanceled();
    }
}
