using System.Diagnostics;
using System.Text.Json;
using LaneQueue.Contracts;
using LaneQueue.Producer;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;

namespace LaneQueue.Consumer;

/// <summary>
/// What a task's start and end mean, each in exactly one place: the result (confirmed, before the delivery is acked), the
/// <c>command.*</c> event, the de-duplication ledger, metrics and the log line; a retry parked in a holding queue; a task put
/// back in its lane; or a dead letter (thrown as <see cref="TaskDeadLetteredException"/>: MassTransit moves the delivery to
/// the lane's <c>_error</c> queue with the reason).
/// </summary>
internal sealed class TaskOutcome(
    BrokerPublisher publisher,
    TaskLedger ledger,
    ConsumerMetrics metrics,
    IOptions<LaneQueueOptions> options,
    ILogger<TaskOutcome> logger)
{
    string ConsumerName => options.Value.ConsumerName;

    public async Task StartedAsync(ExternalTask task, int attempt, TaskHandlerMode mode, DateTimeOffset startedAt)
    {
        ledger.Record(task.Id, TaskLedger.Known.Running, ConsumerName);
        Log.TaskStarted(logger, task.Id, task.Lane.WireName(), (long)(startedAt - WaitingSince(task)).TotalMilliseconds);
        await publisher.PublishEventAsync(TaskRecords.Started(task, attempt, ConsumerName, options.Value.HistoryPayloadMaxBytes));
        if (mode != TaskHandlerMode.Internal)
            await publisher.PublishEventAsync(Event(TaskEvent.ExternalPending, task, attempt));
    }

    /// <summary>The run's progress reports, each published as a <c>command.progress</c> event (and its history copy).</summary>
    public ProgressReports Progress(ExternalTask task, int attempt) =>
        new(value => publisher.PublishEventAsync(TaskRecords.Progress(task, attempt, ConsumerName, value)), TimeProvider.System);

    /// <summary>Records how a run ended: result and event, retry, checkpoint or dead letter.</summary>
    public async Task RunEndedAsync(ExternalTask task, int attempt, IReadOnlyBasicProperties? properties, DateTimeOffset startedAt, TimeSpan ran, RunEnd end)
    {
        // The run's own end (the slot was given back then), not when the result gets published.
        var finishedAt = startedAt + ran;
        switch (end)
        {
            case RunEnd.Completed completed:
                await PublishResultAsync(task, attempt, startedAt, TaskStatuses.Completed, null, completed.Result, finishedAt);
                ledger.Record(task.Id, TaskLedger.Known.Completed, ConsumerName);
                metrics.Count(ConsumerMetrics.Outcome.Completed, task.Lane);
                metrics.Ran(task.Lane, startedAt - WaitingSince(task), ran);
                await publisher.PublishEventAsync(Event(TaskEvent.Completed, task, attempt));
                Log.TaskCompleted(logger, task.Id, task.Lane.WireName(), (long)ran.TotalMilliseconds);
                break;
            case RunEnd.Yielded yielded:
                await publisher.RequeueAsync(task with { Checkpoint = yielded.Checkpoint }, BrokerPublisher.PropertiesFor(task, properties, attempt, null));
                ledger.Record(task.Id, TaskLedger.Known.Unknown, ConsumerName);
                metrics.Count(ConsumerMetrics.Outcome.Preempted, task.Lane);
                Log.TaskYielded(logger, task.Id, task.Lane.WireName());
                await publisher.PublishEventAsync(Event(TaskEvent.Preempted, task, attempt));
                break;
            case RunEnd.Cancelled:
                await EndWithoutRunAsync(task, attempt, TaskStatuses.Cancelled, TaskEvent.Cancelled, "cancelled while running", startedAt);
                break;
            case RunEnd.Failed failed:
                await FailedAsync(task, attempt, properties, startedAt, failed, finishedAt);
                break;
        }
    }

    /// <summary>Retry after the policy's delay in a holding queue (the slot is freed), or dead-letter when none is left.</summary>
    async Task FailedAsync(ExternalTask task, int attempt, IReadOnlyBasicProperties? properties, DateTimeOffset startedAt, RunEnd.Failed failed, DateTimeOffset finishedAt)
    {
        ledger.Record(task.Id, TaskLedger.Known.Unknown, ConsumerName);
        metrics.Count(failed.TimedOut ? ConsumerMetrics.Outcome.Timeout : ConsumerMetrics.Outcome.Failed, task.Lane);
        Activity.Current?.SetStatus(ActivityStatusCode.Error, failed.Error);
        await publisher.PublishEventAsync(Event(failed.TimedOut ? TaskEvent.Timeout : TaskEvent.Failed, task, attempt, failed.Error));
        if (failed.Retryable && options.Value.Queue.RetryPolicy.DelayBefore(attempt + 1) is { } delay)
        {
            await publisher.ScheduleRetryAsync(task, delay, BrokerPublisher.PropertiesFor(task, properties, attempt + 1, failed.Error));
            metrics.Count(ConsumerMetrics.Outcome.Retried, task.Lane);
            Log.TaskRetrying(logger, task.Id, task.Lane.WireName(), (long)delay.TotalMilliseconds, attempt + 1, failed.Error);
            await publisher.PublishEventAsync(Event(TaskEvent.Retry, task, attempt + 1, failed.Error) with { DelayMs = (long)delay.TotalMilliseconds });
            return;
        }

        var status = failed.TimedOut ? TaskStatuses.TimedOut : TaskStatuses.Failed;
        Log.TaskFailed(logger, task.Id, task.Lane.WireName(), status, failed.Error);
        await PublishResultAsync(task, attempt, startedAt, status, failed.Error, TaskJson.EmptyObject, finishedAt);
        metrics.Count(ConsumerMetrics.Outcome.DeadLettered, task.Lane);
        await publisher.PublishEventAsync(Event(TaskEvent.DeadLettered, task, attempt, failed.Error));
        // A failure that can never succeed already reads "field: problem"; a retried one says how often it was tried.
        throw new TaskDeadLetteredException(failed.Retryable
            ? $"{status} after {attempt + 1} attempt(s): {failed.Error} ({failed.Exception.GetType().Name})"
            : $"{failed.Error} ({status}, not retried: it cannot succeed)");
    }

    /// <summary>Ends a task that did not run (cancelled before it started, a duplicate id) or was cancelled while running.</summary>
    public async Task EndWithoutRunAsync(ExternalTask task, int attempt, string status, string eventName, string error, DateTimeOffset startedAt)
    {
        await PublishResultAsync(task, attempt, startedAt, status, error, TaskJson.EmptyObject);
        if (status == TaskStatuses.Cancelled)
        {
            ledger.Record(task.Id, TaskLedger.Known.Completed, ConsumerName);
            metrics.Count(ConsumerMetrics.Outcome.Cancelled, task.Lane);
        }
        await publisher.PublishEventAsync(Event(eventName, task, attempt, error));
    }

    /// <summary>
    /// Ends a message that did not run and never will, and is on its way to the dead-letter queue (it breaks the contract,
    /// names no handler, or the consumer could not finish it): a <c>failed</c> result with <paramref name="error"/> and a
    /// <c>command.dead_lettered</c> event, both for the id and lane <see cref="DeadLetterAnswers"/> could read.
    /// </summary>
    public async Task RefusedAsync(TaskIdentity identity, SessionLane lane, int attempt, string error)
    {
        ArgumentNullException.ThrowIfNull(identity);
        await DeadLetteringAsync(new ExternalTask { Id = identity.Id, Lane = lane, SessionId = identity.SessionId }, attempt, error);
    }

    async Task DeadLetteringAsync(ExternalTask task, int attempt, string error)
    {
        Log.TaskFailed(logger, task.Id, task.Lane.WireName(), TaskStatuses.Failed, error);
        await PublishResultAsync(task, attempt, DateTimeOffset.UtcNow, TaskStatuses.Failed, error, TaskJson.EmptyObject);
        metrics.Count(ConsumerMetrics.Outcome.DeadLettered, task.Lane);
        await publisher.PublishEventAsync(Event(TaskEvent.DeadLettered, task, attempt, error));
    }

    /// <summary>Puts a task that has not started back at the tail of its lane, untouched (confirmed before the ack).</summary>
    public async Task ReturnToLaneAsync(ExternalTask task, int attempt, IReadOnlyBasicProperties? properties, string why)
    {
        await publisher.RequeueAsync(task, BrokerPublisher.PropertiesFor(task, properties, attempt, null));
        ledger.Record(task.Id, TaskLedger.Known.Unknown, ConsumerName);
        Log.TaskSkipped(logger, task.Id, task.Lane.WireName(), why);
    }

    /// <summary>
    /// A delayed task that is not due yet: into the delay tree (<see cref="DelayTopology"/>) for the time left, marked with its
    /// due time so it is not delayed again when it comes back, confirmed before the delivery is acked.
    /// </summary>
    public async Task DelayAsync(ExternalTask task, int attempt, IReadOnlyBasicProperties? properties, DateTimeOffset due, bool debounceSeen = false)
    {
        var wait = due - DateTimeOffset.UtcNow;
        var entering = BrokerPublisher.PropertiesFor(task, properties, attempt, null);
        if (debounceSeen)
            entering.Headers![BrokerNames.DebounceSeenHeader] = 1; // recorded as its key's latest: when due it only reads the record
        await publisher.PublishDelayedAsync(task, wait, DelayTopology.Entering(entering, due));
        Log.TaskDelayed(logger, task.Id, task.Lane.WireName(), (long)Math.Ceiling(wait.TotalMilliseconds), DelayTopology.Hops(wait));
    }

    /// <summary>Since when a task waits in its lane (its log line's and wait-time metric's start): a delayed task's due time, else its creation.</summary>
    static DateTimeOffset WaitingSince(ExternalTask task) =>
        TaskParser.DueAt(task) is { } due && due > task.CreatedAt ? due : task.CreatedAt;

    /// <summary>
    /// Parks a task that has not started in its lane's retry holding queue for <paramref name="delay"/> (confirmed before the ack),
    /// after which it is looked at again, never dropped: a copy of an id running somewhere, or a crash suspect while this process
    /// holds another (<paramref name="crashes"/> goes with it, <see cref="CrashSuspects"/>).
    /// </summary>
    public async Task HoldAsync(ExternalTask task, int attempt, IReadOnlyBasicProperties? properties, TimeSpan delay, string why, long crashes = 0)
    {
        var held = BrokerPublisher.PropertiesFor(task, properties, attempt, null);
        if (crashes > 0)
            held.Headers![BrokerNames.CrashesHeader] = crashes;
        await publisher.ScheduleRetryAsync(task, delay, held);
        Log.TaskSkipped(logger, task.Id, task.Lane.WireName(), $"{why}; held {delay.TotalSeconds} s");
    }

    /// <summary>
    /// Dead-letters a crash suspect that was delivered more times than the delivery limit (counted over LaneQueue's copies,
    /// <see cref="CrashSuspects"/>): its failed result and event, with the broker's own <c>delivery_limit</c> words.
    /// </summary>
    public async Task<TaskDeadLetteredException> CrashedTooOftenAsync(ExternalTask task, int attempt, long deliveries)
    {
        var error = CrashSuspects.DeliveryLimitError(deliveries);
        await DeadLetteringAsync(task, attempt, error);
        return new TaskDeadLetteredException(error);
    }

    /// <summary>
    /// The run ended without an outcome (e.g. the result could not be published, or the consumer stopped past its drain
    /// time): the id may run again, here or on another consumer.
    /// </summary>
    public async Task AbandonedAsync(ExternalTask task, int attempt, Exception exception)
    {
        ledger.Record(task.Id, TaskLedger.Known.Unknown, ConsumerName);
        await publisher.PublishEventAsync(Event(TaskEvent.Failed, task, attempt, "abandoned: " + exception.Message));
    }

    Task PublishResultAsync(ExternalTask task, int attempt, DateTimeOffset startedAt, string status, string? error, JsonElement result, DateTimeOffset? finishedAt = null) =>
        publisher.PublishResultAsync(TaskRecords.Result(task, attempt, startedAt, status, error, result, ConsumerName, finishedAt));

    /// <summary>An event about attempt <paramref name="attempt"/> (0-based retries before it; the event counts from 1).</summary>
    TaskEvent Event(string name, ExternalTask task, int attempt, string? error = null) => TaskRecords.Event(name, task, attempt, error, ConsumerName);
}

/// <summary>A task that failed for good; MassTransit moves it to the lane's dead-letter queue with this message as reason.</summary>
/// <remarks>No inner exception on purpose: MassTransit reports the innermost exception's message as the reason.</remarks>
internal sealed class TaskDeadLetteredException(string message) : Exception(message);
