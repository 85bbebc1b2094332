using LaneQueue.Contracts;

namespace LaneQueue.Producer;

/// <summary>
/// Submits tasks to LaneQueue and follows them: what application code injects (<c>services.AddLaneQueueProducer()</c>)
/// and what its tests mock or replace with the broker-free harness. <see cref="LaneQueueProducer"/> is the RabbitMQ one.
/// </summary>
public interface ILaneQueueProducer
{
    /// <summary>Validates and publishes a task; returns once the broker has stored it (publisher confirm).</summary>
    /// <exception cref="InvalidTaskException">The task breaks the wire contract; names the field.</exception>
    /// <exception cref="TaskRejectedException">The broker did not store it (unroutable, nacked, unreachable past the recovery time-out).</exception>
    Task SubmitTaskAsync(ExternalTask task, CancellationToken cancellationToken = default);

    /// <summary>Submits a task and waits for its result.</summary>
    /// <exception cref="TimeoutException">No result arrived within <paramref name="timeout"/>; the task may still run.</exception>
    Task<ExternalTaskResult> SubmitAndWaitAsync(ExternalTask task, TimeSpan timeout, CancellationToken cancellationToken = default);

    /// <summary>Starts listening for a task's result before it is submitted, so none is missed; await the returned task for it.</summary>
    Task<Task<ExternalTaskResult>> WatchResultAsync(string taskId, CancellationToken cancellationToken = default);

    /// <summary>
    /// Stops a <see cref="WatchResultAsync"/> watch (its task stays pending), so the id can be watched again; a no-op for an id
    /// not watched. The default does nothing, for implementations written before it.
    /// </summary>
    Task StopWatchingResultAsync(string taskId) => Task.CompletedTask;

    /// <summary>Cancels a task on every consumer: skipped if still waiting, its token fired if running.</summary>
    Task CancelTaskAsync(string taskId, CancellationToken cancellationToken = default);

    /// <summary>Cancels every task of a session created before now.</summary>
    Task CancelSessionAsync(string sessionId, CancellationToken cancellationToken = default);

    /// <summary>
    /// Interrupts a session on every consumer: each of its tasks running now is asked to yield (a preemptible task gives its
    /// slot up with a checkpoint, goes back to its lane and resumes later; a non-preemptible one runs on), or, with
    /// <paramref name="cancel"/>, is cancelled. Its waiting tasks and tasks that start later are not touched (compare
    /// <see cref="CancelSessionAsync"/>). The default throws, for implementations written before it.
    /// </summary>
    Task InterruptSessionAsync(string sessionId, bool cancel = false, CancellationToken cancellationToken = default) =>
        throw new NotSupportedException($"{GetType().Name} does not implement session interrupts");

    /// <summary>Adds or replaces a recurring schedule (docs/wire-contract.md §11). The default throws, for implementations written before it.</summary>
    Task AddScheduleAsync(TaskSchedule schedule, CancellationToken cancellationToken = default) =>
        throw new NotSupportedException($"{GetType().Name} does not implement recurring schedules");

    /// <summary>The schedules with their next due time and last firing. The default throws.</summary>
    Task<IReadOnlyList<ScheduleInfo>> ListSchedulesAsync(CancellationToken cancellationToken = default) =>
        throw new NotSupportedException($"{GetType().Name} does not implement recurring schedules");

    /// <summary>Pauses a schedule. The default throws.</summary>
    Task PauseScheduleAsync(string scheduleId, CancellationToken cancellationToken = default) =>
        throw new NotSupportedException($"{GetType().Name} does not implement recurring schedules");

    /// <summary>Resumes a paused schedule (catch-up per its policy). The default throws.</summary>
    Task ResumeScheduleAsync(string scheduleId, CancellationToken cancellationToken = default) =>
        throw new NotSupportedException($"{GetType().Name} does not implement recurring schedules");

    /// <summary>Removes a schedule. The default throws.</summary>
    Task RemoveScheduleAsync(string scheduleId, CancellationToken cancellationToken = default) =>
        throw new NotSupportedException($"{GetType().Name} does not implement recurring schedules");

    /// <summary>Pauses a lane on every consumer, including those that start later, until <see cref="ResumeLaneAsync"/>.</summary>
    Task PauseLaneAsync(SessionLane lane, CancellationToken cancellationToken = default);

    /// <summary>Resumes a lane paused with <see cref="PauseLaneAsync"/>.</summary>
    Task ResumeLaneAsync(SessionLane lane, CancellationToken cancellationToken = default);

    /// <summary>Completes a task of an External lane (the reference's <c>complete_external_task</c>).</summary>
    Task CompleteExternalTaskAsync(ExternalCompletion completion, CancellationToken cancellationToken = default);

    /// <summary>
    /// The External-lane tasks that hold a slot somewhere in the fleet and wait for an external worker (the reference's
    /// <c>pending_external_tasks()</c>), ordered by lane, then announcement: as the consumers report them in their heartbeats.
    /// </summary>
    Task<IReadOnlyList<PendingExternalTask>> GetPendingExternalTasksAsync(CancellationToken cancellationToken = default);

    /// <summary>
    /// Looks a task up in the history (its events and results, kept for <c>LaneQueue:HistoryMaxAge</c>, default 7 days), also
    /// after it finished: the timeline of <paramref name="taskId"/> over the last <paramref name="lookBack"/> (default: the whole retention).
    /// </summary>
    Task<TaskHistory> GetTaskHistoryAsync(string taskId, TimeSpan? lookBack = null, CancellationToken cancellationToken = default);

    /// <summary>
    /// Follows lifecycle events (<see cref="TaskEvent"/>); <paramref name="pattern"/> is a topic binding such as
    /// <c>command.#</c> or <c>command.completed.query</c>. Dispose the result to stop.
    /// </summary>
    Task<IAsyncDisposable> WatchEventsAsync(Func<TaskEvent, Task> onEvent, string pattern = "command.#", CancellationToken cancellationToken = default);
}
