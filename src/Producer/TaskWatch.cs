using System.Threading.Channels;
using LaneQueue.Contracts;

namespace LaneQueue.Producer;

/// <summary>Following one task from any <see cref="ILaneQueueProducer"/> (the RabbitMQ producer or the test harness).</summary>
public static class TaskWatch
{
    /// <summary>Events that end a task (its result is out).</summary>
    static readonly HashSet<string> Terminal = [TaskEvent.Completed, TaskEvent.DeadLettered, TaskEvent.Cancelled, TaskEvent.Duplicate];

    /// <summary>How long to wait, once the result is in, for the events published before it (another channel) to arrive.</summary>
    static readonly TimeSpan AfterResult = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// Follows one task to its end: calls <paramref name="onEvent"/> with each of its lifecycle events in order
    /// (<c>command.started</c>, <c>command.progress</c> reports, retries, ...), first those the history already holds, then
    /// live ones, and returns its result. A task that already finished returns at once, after its history's events.
    /// Live events come from a subscription to <c>command.#</c> filtered here: the watcher receives the fleet's events while it
    /// watches (fine for a person or a few watchers; for many tasks, prefer <see cref="ILaneQueueProducer.WatchResultAsync"/>).
    /// </summary>
    /// <param name="lookBack">How far back the history is read for what happened before the watch (default: its whole retention).</param>
    /// <exception cref="TimeoutException">No result within <paramref name="timeout"/>; the task may still run.</exception>
    public static async Task<ExternalTaskResult> WatchTaskAsync(this ILaneQueueProducer producer, string taskId, Func<TaskEvent, Task> onEvent, TimeSpan timeout,
        TimeSpan? lookBack = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(producer);
        ArgumentException.ThrowIfNullOrEmpty(taskId);
        ArgumentNullException.ThrowIfNull(onEvent);
        // Listen first (events and result), then read the history: whatever happens in between is caught by one or the other.
        var result = await producer.WatchResultAsync(taskId, cancellationToken);
        try
        {
            return await FollowAsync(producer, taskId, onEvent, timeout, lookBack, result, cancellationToken);
        }
        finally
        {
            await producer.StopWatchingResultAsync(taskId);
        }
    }

    static async Task<ExternalTaskResult> FollowAsync(ILaneQueueProducer producer, string taskId, Func<TaskEvent, Task> onEvent, TimeSpan timeout,
        TimeSpan? lookBack, Task<ExternalTaskResult> result, CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        var live = Channel.CreateUnbounded<TaskEvent>(new UnboundedChannelOptions { SingleReader = true });
        await using var events = await producer.WatchEventsAsync(e =>
        {
            if (e.TaskId == taskId)
                live.Writer.TryWrite(e);
            return Task.CompletedTask;
        }, "command.#", cancellationToken);
        var history = await producer.GetTaskHistoryAsync(taskId, lookBack, cancellationToken);
        var seen = new HashSet<(string, int, DateTimeOffset, string?)>();
        foreach (var e in history.Events)
        {
            seen.Add(Key(e));
            await onEvent(e);
        }
        if (history.Final is { } done)
            return done;
        // Hands on what arrived; true once a terminal event went by.
        async Task<bool> DrainAsync()
        {
            while (live.Reader.TryRead(out var e))
            {
                if (!seen.Add(Key(e)))
                    continue;
                await onEvent(e);
                if (Terminal.Contains(e.Event))
                    return true;
            }
            return false;
        }

        var ended = false;
        try
        {
            while (!(ended = await DrainAsync()))
            {
                var more = live.Reader.WaitToReadAsync(deadline.Token).AsTask();
                if (await Task.WhenAny(more, result) == result)
                    break;
                await more;
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"no result for task '{taskId}' within {timeout.TotalSeconds:0.#} s; it may still run");
        }
        var final = await result.WaitAsync(cancellationToken);
        if (!ended)
        {
            // The result came first: the events published before it travel on another channel; give them a moment.
            using var grace = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            grace.CancelAfter(AfterResult);
            try
            {
                while (!await DrainAsync())
                    await live.Reader.WaitToReadAsync(grace.Token);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                // none came: the result stands for the end
            }
        }
        return final;
    }

    static (string, int, DateTimeOffset, string?) Key(TaskEvent e) => (e.Event, e.Attempt, e.At, e.Consumer);
}
