using System.Diagnostics;
using System.Text.Json;
using LaneQueue.Contracts;
using LaneQueue.Producer;
using MassTransit;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;

namespace LaneQueue.Consumer;

/// <summary>
/// Takes one delivered task through its lifecycle. It reads the task from the raw body (plain JSON or MassTransit
/// envelope), skips it when cancelled or a duplicate, takes a rate-limit token and a slot, runs it (handler, external
/// worker or both, per the lane's mode) under its timeout, and ends it in exactly one state:
/// completed / cancelled (result published, acked), yielded (re-published with its checkpoint, then acked),
/// failed or timed out with retries left (parked in a retry holding queue, then acked), or failed for good (result
/// published, thrown: MassTransit moves it to <c>lanequeue.&lt;lane&gt;_error</c> with the reason). Every
/// transition is a <c>command.*</c> event. Malformed tasks are thrown at once, so they are dead-lettered too.
/// </summary>
internal sealed class LaneTaskConsumer(
    TaskHandlers handlers,
    IServiceProvider services,
    SlotBudget slots,
    TaskRateLimits rateLimits,
    LaneActivity activity,
    RunningTasks running,
    TaskLedger ledger,
    LaneModes modes,
    ExternalTasks external,
    BrokerPublisher publisher,
    ConsumerMetrics metrics,
    LaneEndpoints endpoints,
    IHostApplicationLifetime lifetime,
    IOptions<LaneQueueOptions> options,
    ILogger<LaneTaskConsumer> logger) : IConsumer<TaskDelivery>
{
    public async Task Consume(ConsumeContext<TaskDelivery> context)
    {
        var settings = options.Value;
        var task = ReadTask(context, settings);
        var attempt = AttemptOf(context);
        var headers = context.ReceiveContext.TransportHeaders;
        using var trace = LaneQueueTelemetry.Source.StartActivity($"{task.Lane.WireName()} run", ActivityKind.Consumer,
            LaneQueueTelemetry.Extract(name => headers.TryGetHeader(name, out var value) ? value as string ?? (value is byte[] b ? System.Text.Encoding.UTF8.GetString(b) : value?.ToString()) : null));
        trace?.SetTag("messaging.system", "rabbitmq");
        trace?.SetTag("lanequeue.task_id", task.Id);
        trace?.SetTag("lanequeue.lane", task.Lane.WireName());
        trace?.SetTag("lanequeue.attempt", attempt);
        context.ReceiveContext.TryGetPayload<RabbitMqBasicConsumeContext>(out var delivery);

        if (endpoints.IsPausedByOperator(task.Lane) && settings.Topology == LaneTopology.QueuePerLane)
        {
            // Delivered while the endpoint is being stopped: back to the lane, untouched.
            await publisher.RequeueAsync(task, BrokerPublisher.PropertiesFor(task, delivery?.Properties, attempt, null));
            Log.TaskSkipped(logger, task.Id, task.Lane.WireName(), "lane paused by operator; returned to its lane");
            return;
        }
        if (ledger.IsCancelled(task))
        {
            await FinishAsync(context, task, attempt, TaskStatuses.Cancelled, TaskEvent.Cancelled, "cancelled before it started", DateTimeOffset.UtcNow);
            return;
        }
        var duplicate = ledger.IsDuplicate(task.Id, context.ReceiveContext.Redelivered, out var first);
        if (duplicate && first is { State: TaskLedger.Known.Running } && DateTimeOffset.UtcNow - first.At > DeferAtMost)
            duplicate = false; // the run it points at went quiet (its consumer may have lost the broker and its events): run this copy
        if (duplicate || running.TryStart(task) is not { } run)
        {
            if (first is not { State: TaskLedger.Known.Completed })
            {
                // Running (here or elsewhere) but not completed: that run may still fail (e.g. its broker connection is gone and this
                // copy came back without the redelivered flag after a broker crash), so the copy is never dropped: it comes back later.
                await publisher.ScheduleRetryAsync(task, DeferDelay, BrokerPublisher.PropertiesFor(task, delivery?.Properties, attempt, null));
                Log.TaskSkipped(logger, task.Id, task.Lane.WireName(), $"same id running on {first?.Consumer ?? "this consumer"}; copy deferred {DeferDelay.TotalSeconds} s");
                return;
            }
            var where = first is null ? "running on this consumer" : $"{first.State.ToString().ToLowerInvariant()} on {first.Consumer ?? "this consumer"} at {first.At:O}";
            Log.TaskSkipped(logger, task.Id, task.Lane.WireName(), "duplicate id, " + where);
            await FinishAsync(context, task, attempt, TaskStatuses.Duplicate, TaskEvent.Duplicate, $"task id '{task.Id}' is {where}; not run twice", DateTimeOffset.UtcNow);
            return;
        }

        try
        {
            await RunAsync(context, task, attempt, run, delivery?.Properties, settings);
        }
        catch (Exception ex) when (ex is not (TaskDeadLetteredException or InvalidTaskException))
        {
            // Not completed (e.g. the result could not be published): the id may run again, here or on another consumer.
            ledger.Record(task.Id, TaskLedger.Known.Unknown, settings.ConsumerName);
            await publisher.PublishEventAsync(Event(TaskEvent.Failed, task, attempt, "abandoned: " + ex.Message));
            throw;
        }
        finally
        {
            running.Finish(run);
        }
    }

    async Task RunAsync(ConsumeContext context, ExternalTask task, int attempt, RunningTasks.Run run, IReadOnlyBasicProperties? properties, LaneQueueOptions settings)
    {
        var mode = modes.For(task.Lane);
        var handler = mode.Mode == TaskHandlerMode.External ? null : handlers.Resolve(task.CommandType, services)
            ?? throw new InvalidTaskException("command_type",
                $"'{task.CommandType}' has no handler on consumer {settings.ConsumerName}; known: {string.Join(", ", handlers.CommandTypes)}");

        using var stopping = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, run.Cancel.Token);
        IDisposable slot;
        using (var admission = CancellationTokenSource.CreateLinkedTokenSource(stopping.Token, lifetime.ApplicationStopping))
        {
            try
            {
                await rateLimits.WaitAsync(task.Lane, admission.Token);
                slot = await slots.AcquireAsync(task.Lane, admission.Token);
            }
            catch (OperationCanceledException) when (lifetime.ApplicationStopping.IsCancellationRequested && !stopping.IsCancellationRequested)
            {
                // Draining: a task that has not started goes back to its lane (confirmed) instead of running here.
                await publisher.RequeueAsync(task, BrokerPublisher.PropertiesFor(task, properties, attempt, null));
                ledger.Record(task.Id, TaskLedger.Known.Unknown, settings.ConsumerName);
                Log.TaskSkipped(logger, task.Id, task.Lane.WireName(), "consumer draining; returned to its lane");
                return;
            }
        }
        using var slotLease = slot;

        var timeoutMs = mode.Mode == TaskHandlerMode.External ? task.TimeoutMs ?? mode.TimeoutMs : task.TimeoutMs ?? settings.Queue.TimeoutMs(task.Lane);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(stopping.Token);
        if (timeoutMs is { } ms)
            deadline.CancelAfter(TimeSpan.FromMilliseconds(Math.Clamp(ms, 1, TaskParser.MaxTimeoutMs)));

        var startedAt = DateTimeOffset.UtcNow;
        ledger.Record(task.Id, TaskLedger.Known.Running, settings.ConsumerName);
        activity.Started(task.Lane);
        Log.TaskStarted(logger, task.Id, task.Lane.WireName(), (long)(startedAt - task.CreatedAt).TotalMilliseconds);
        await publisher.PublishEventAsync(Event(TaskEvent.Started, task, attempt));
        var clock = Stopwatch.StartNew();
        object? value;
        try
        {
            if (mode.Mode != TaskHandlerMode.Internal)
                await publisher.PublishEventAsync(Event(TaskEvent.ExternalPending, task, attempt));
            if (handler is null)
            {
                var completion = await external.RunAsync(task, settings.ConsumerName, TimeSpan.FromMilliseconds(timeoutMs ?? mode.TimeoutMs), deadline.Token);
                value = completion.Success ? completion.Result : throw new ExternalTaskFailedException(completion.Error ?? "the external worker reported a failure");
            }
            else
            {
                if (mode.Mode == TaskHandlerMode.Hybrid)
                    await external.AnnounceAsync(task, settings.ConsumerName, stopping.Token);
                value = await handler.HandleAsync(new TaskContext
                {
                    Task = task,
                    ConsumerName = settings.ConsumerName,
                    Attempt = attempt,
                    CancellationToken = deadline.Token,
                    YieldRequested = run.Yield.Token,
                }).WaitAsync(deadline.Token); // a handler that ignores its token is abandoned at the deadline, its slot freed
            }
        }
        catch (OperationCanceledException) when (run.Cancel.IsCancellationRequested)
        {
            await FinishAsync(context, task, attempt, TaskStatuses.Cancelled, TaskEvent.Cancelled, "cancelled while running", startedAt);
            return;
        }
        catch (Exception ex) when (!context.CancellationToken.IsCancellationRequested)
        {
            var timedOut = deadline.IsCancellationRequested && !stopping.IsCancellationRequested || ex is TimeoutException;
            var error = timedOut ? $"timed out after {timeoutMs} ms" : ex.Message;
            await FailAsync(context, task, attempt, properties, timedOut, error, startedAt, ex);
            return;
        }
        finally
        {
            activity.Finished(task.Lane);
        }

        if (value is TaskYield yielded)
        {
            var resumed = task with { Checkpoint = yielded.Checkpoint is null ? null : JsonSerializer.SerializeToElement(yielded.Checkpoint, TaskJson.Options) };
            await publisher.RequeueAsync(resumed, BrokerPublisher.PropertiesFor(task, properties, attempt, null));
            ledger.Record(task.Id, TaskLedger.Known.Unknown, settings.ConsumerName);
            metrics.Count(ConsumerMetrics.Outcome.Preempted, task.Lane);
            Log.TaskYielded(logger, task.Id, task.Lane.WireName());
            await publisher.PublishEventAsync(Event(TaskEvent.Preempted, task, attempt));
            return;
        }

        await PublishResultAsync(context, task, attempt, startedAt, TaskStatuses.Completed, null, value switch
        {
            null => TaskJson.EmptyObject,
            JsonElement element => element,
            _ => JsonSerializer.SerializeToElement(value, TaskJson.Options),
        });
        ledger.Record(task.Id, TaskLedger.Known.Completed, settings.ConsumerName);
        metrics.Count(ConsumerMetrics.Outcome.Completed, task.Lane);
        metrics.Ran(task.Lane, startedAt - task.CreatedAt, clock.Elapsed);
        await publisher.PublishEventAsync(Event(TaskEvent.Completed, task, attempt));
        Log.TaskCompleted(logger, task.Id, task.Lane.WireName(), clock.ElapsedMilliseconds);
    }

    /// <summary>Retry after the policy's delay in a holding queue (the slot is freed), or dead-letter when none is left.</summary>
    async Task FailAsync(ConsumeContext context, ExternalTask task, int attempt, IReadOnlyBasicProperties? properties, bool timedOut, string error, DateTimeOffset startedAt, Exception ex)
    {
        var settings = options.Value;
        ledger.Record(task.Id, TaskLedger.Known.Unknown, settings.ConsumerName);
        metrics.Count(timedOut ? ConsumerMetrics.Outcome.Timeout : ConsumerMetrics.Outcome.Failed, task.Lane);
        Activity.Current?.SetStatus(ActivityStatusCode.Error, error);
        await publisher.PublishEventAsync(Event(timedOut ? TaskEvent.Timeout : TaskEvent.Failed, task, attempt, error));
        if (settings.Queue.RetryPolicy.DelayBefore(attempt + 1) is { } delay)
        {
            await publisher.ScheduleRetryAsync(task, delay, BrokerPublisher.PropertiesFor(task, properties, attempt + 1, error));
            metrics.Count(ConsumerMetrics.Outcome.Retried, task.Lane);
            Log.TaskRetrying(logger, task.Id, task.Lane.WireName(), (long)delay.TotalMilliseconds, attempt + 1, error);
            await publisher.PublishEventAsync(Event(TaskEvent.Retry, task, attempt + 1, error) with { DelayMs = (long)delay.TotalMilliseconds });
            return;
        }

        var status = timedOut ? TaskStatuses.TimedOut : TaskStatuses.Failed;
        Log.TaskFailed(logger, task.Id, task.Lane.WireName(), status, error);
        await PublishResultAsync(context, task, attempt, startedAt, status, error, TaskJson.EmptyObject);
        metrics.Count(ConsumerMetrics.Outcome.DeadLettered, task.Lane);
        await publisher.PublishEventAsync(Event(TaskEvent.DeadLettered, task, attempt, error));
        throw new TaskDeadLetteredException($"{status} after {attempt + 1} attempt(s): {error} ({ex.GetType().Name})");
    }

    async Task FinishAsync(ConsumeContext context, ExternalTask task, int attempt, string status, string eventName, string error, DateTimeOffset startedAt)
    {
        await PublishResultAsync(context, task, attempt, startedAt, status, error, TaskJson.EmptyObject);
        if (status == TaskStatuses.Cancelled)
        {
            ledger.Record(task.Id, TaskLedger.Known.Completed, options.Value.ConsumerName);
            metrics.Count(ConsumerMetrics.Outcome.Cancelled, task.Lane);
        }
        await publisher.PublishEventAsync(Event(eventName, task, attempt, error));
    }

    ExternalTask ReadTask(ConsumeContext context, LaneQueueOptions settings)
    {
        var queue = context.ReceiveContext.InputAddress.AbsolutePath.Split('/')[^1];
        try
        {
            var task = TaskParser.Parse(context.ReceiveContext.Body.GetBytes(), settings.MaxPayloadBytes);
            if (settings.Topology == LaneTopology.QueuePerLane && queue != BrokerNames.LaneQueue(task.Lane))
                throw new InvalidTaskException("lane", $"the task says '{task.Lane.WireName()}' but was routed to queue '{queue}'; publish with routing key = lane");
            return task;
        }
        catch (InvalidTaskException ex)
        {
            Log.MessageRejected(logger, queue, ex.Message);
            throw;
        }
    }

    /// <summary>How long a copy of a task id that is running waits before it is looked at again.</summary>
    static readonly TimeSpan DeferDelay = TimeSpan.FromSeconds(2);

    /// <summary>How long a copy waits for a run of the same id it cannot see finish, before it runs itself (at least once).</summary>
    static readonly TimeSpan DeferAtMost = TimeSpan.FromSeconds(30);

    static int AttemptOf(ConsumeContext context) =>
        context.ReceiveContext.TransportHeaders.TryGetHeader(BrokerNames.AttemptHeader, out var value) && value is not null
            && int.TryParse(value is byte[] bytes ? System.Text.Encoding.UTF8.GetString(bytes) : value.ToString(), out var attempt)
            ? Math.Max(0, attempt)
            : 0;

    TaskEvent Event(string name, ExternalTask task, int attempt, string? error = null) => new()
    {
        Event = name,
        TaskId = task.Id,
        Lane = task.Lane,
        SessionId = task.SessionId,
        Consumer = options.Value.ConsumerName,
        Attempt = attempt,
        Error = error,
    };

    async Task PublishResultAsync(ConsumeContext context, ExternalTask task, int attempt, DateTimeOffset startedAt, string status, string? error, JsonElement result)
    {
        var endpoint = await context.GetSendEndpoint(ResultsAddress);
        await endpoint.Send(new ExternalTaskResult
        {
            TaskId = task.Id,
            Lane = task.Lane,
            Success = status == TaskStatuses.Completed,
            Status = status,
            Result = result,
            Error = error,
            SessionId = task.SessionId,
            Consumer = options.Value.ConsumerName,
            StartedAt = startedAt,
            FinishedAt = DateTimeOffset.UtcNow,
            Attempts = attempt + 1,
        }, send => send.SetRoutingKey(task.Id));
    }

    static readonly Uri ResultsAddress = new($"exchange:{BrokerNames.ResultsExchange}?type=topic&durable=true&autodelete=false");
}

/// <summary>A task that failed for good; MassTransit moves it to the lane's dead-letter queue with this message as reason.</summary>
/// <remarks>No inner exception on purpose: MassTransit reports the innermost exception's message as the reason.</remarks>
internal sealed class TaskDeadLetteredException(string message) : Exception(message);

/// <summary>An external worker completed a task with <c>success: false</c>.</summary>
internal sealed class ExternalTaskFailedException(string message) : Exception(message);
