using System.Diagnostics;
using LaneQueue.Contracts;
using LaneQueue.Producer;
using MassTransit;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;

namespace LaneQueue.Consumer;

/// <summary>
/// Takes one delivered task through its lifecycle, in three steps with a class each: admission
/// (<see cref="TaskAdmission"/>: rate limit, slot, preemption), execution (<see cref="TaskExecution"/>: handler or external
/// worker under the timeout) and outcome (<see cref="TaskOutcome"/>: result, event, retry, checkpoint or dead letter). Before
/// admission it reads the task from the raw body (plain JSON or MassTransit envelope; a task that breaks the contract, or
/// names a command type nobody handles, is thrown at once: the error pipe dead-letters it and <see cref="DeadLetterAnswers"/>
/// publishes its result) and skips it when its lane is paused by an operator, when it was cancelled, or when its id already
/// ran or its <c>dedup_key</c> is held by another task, or, in debounce mode, was taken over by a later task (<see cref="DedupClaims"/>). A delivery whose result this consumer published before dead-lettering it is marked answered, so nothing after it
/// answers again; a redelivered copy of it is dead-lettered again without a second result.
/// </summary>
internal sealed class LaneTaskConsumer(
    TaskAdmission admission,
    TaskExecution execution,
    TaskOutcome outcome,
    RunningTasks running,
    TaskLedger ledger,
    LaneModes modes,
    LaneActivity activity,
    LaneEndpoints endpoints,
    DeadLetterAnswers answers,
    RedeliveryCheck redeliveries,
    DedupClaims dedup,
    CrashSuspects suspects,
    IHostApplicationLifetime lifetime,
    IOptions<LaneQueueOptions> options,
    ILogger<LaneTaskConsumer> logger) : IConsumer<TaskDelivery>
{
    /// <summary>How long a copy of a task id that is running waits before it is looked at again.</summary>
    static readonly TimeSpan DeferDelay = TimeSpan.FromSeconds(2);

    /// <summary>How long a copy waits for a run of the same id it cannot see finish, before it runs itself (at least once).</summary>
    static readonly TimeSpan DeferAtMost = TimeSpan.FromSeconds(30);

    const string PausedByOperator = "lane paused by operator; returned to its lane";

    public async Task Consume(ConsumeContext<TaskDelivery> context)
    {
        var settings = options.Value;
        var task = ReadTask(context, settings);
        // Until it waits for its slot, the scheduler holds a free slot of this lane for it (a lower lane would otherwise take
        // the slot in the moment between the lane's last task ending and this one reaching its turn): begun by the endpoint's
        // ArrivalFilter as the delivery came in (queue per lane), else here, now that the lane is known.
        // (ReadTask has checked that a task in a lane's queue says that lane.) Ending it twice does nothing.
        using var arrival = ArrivalFilter.Of(context.ReceiveContext) ?? admission.Arriving(task.Lane);
        var attempt = DeadLetterAnswers.AttemptOf(context.ReceiveContext);
        if (answers.AnsweredBefore(context.ReceiveContext, out var reason) && reason is not null)
        {
            // Failed here for good and answered, but the move to the dead-letter queue was lost (its channel or connection closed
            // before the ack): dead-lettered again without running and without a second result.
            Log.TaskSkipped(logger, task.Id, task.Lane.WireName(), "redelivered copy of a task answered and dead-lettered before; dead-lettered again without a second result");
            answers.MarkAnswered(context.ReceiveContext, reason);
            throw new TaskDeadLetteredException(reason);
        }
        var headers = context.ReceiveContext.TransportHeaders;
        using var trace = LaneQueueTelemetry.Source.StartActivity($"{task.Lane.WireName()} run", ActivityKind.Consumer,
            LaneQueueTelemetry.Extract(name => headers.TryGetHeader(name, out var value) ? value as string ?? (value is byte[] b ? System.Text.Encoding.UTF8.GetString(b) : value?.ToString()) : null));
        trace?.SetTag("messaging.system", "rabbitmq");
        trace?.SetTag("lanequeue.task_id", task.Id);
        trace?.SetTag("lanequeue.lane", task.Lane.WireName());
        trace?.SetTag("lanequeue.attempt", attempt);
        context.ReceiveContext.TryGetPayload<RabbitMqBasicConsumeContext>(out var delivery);
        var properties = delivery?.Properties;

        if (endpoints.IsPaused(task.Lane) && settings.Topology == LaneTopology.QueuePerLane)
        {
            // Delivered while the endpoint is being stopped: back to the lane, untouched.
            arrival.Dispose();
            await outcome.ReturnToLaneAsync(task, attempt, properties, PausedByOperator);
            return;
        }
        if (ledger.IsCancelled(task))
        {
            arrival.Dispose();
            await outcome.EndWithoutRunAsync(task, attempt, TaskStatuses.Cancelled, TaskEvent.Cancelled, "cancelled before it started", DateTimeOffset.UtcNow);
            return;
        }
        // A task held by a process that died: the only suspect this process holds, or held elsewhere for a while (CrashSuspects).
        var crashes = CrashSuspects.CrashesOf(properties);
        var suspect = suspects.Enabled && crashes > 0;
        if (suspect && crashes > suspects.Limit)
        {
            arrival.Dispose();
            var deadLettered = await outcome.CrashedTooOftenAsync(task, attempt, crashes);
            answers.MarkAnswered(context.ReceiveContext, deadLettered.Message);
            throw deadLettered;
        }
        using var suspectPlace = suspect ? suspects.TryEnter() : null;
        if (suspect)
        {
            if (suspectPlace is null)
            {
                arrival.Dispose();
                using (suspects.Holding())
                {
                    await outcome.HoldAsync(task, attempt, properties, CrashSuspects.HoldDelay,
                        $"crash suspect ({crashes} crash(es) held in) while this consumer holds another", crashes);
                }
                return;
            }
            await suspects.SettleAsync(context.CancellationToken);
        }
        var debounceSeen = task.Debounced && properties?.Headers?.ContainsKey(BrokerNames.DebounceSeenHeader) == true;
        if (task.Debounced && !debounceSeen)
        {
            // Debounce, first sight: this task is now its key's latest (confirmed before it waits or runs); an earlier one with
            // the key that comes due after this finds it recorded and is answered duplicate.
            await dedup.RecordLatestAsync(task.DedupKey!, task.DedupWindowOrDefaultMs, task.Id, context.CancellationToken);
            debounceSeen = true;
        }
        if (DueAt(task, properties) is { } due && due > DateTimeOffset.UtcNow)
        {
            // A delayed task before its time (published straight to its lane with delay_ms / not_before, or out of the delay tree
            // early by a clock difference): into the delay tree for what is left, confirmed before the ack. It holds no slot.
            arrival.Dispose();
            await outcome.DelayAsync(task, attempt, properties, due, debounceSeen);
            return;
        }
        if (task.DedupKey is { } key && await DedupErrorAsync(task, key, properties, context.CancellationToken) is { } error)
        {
            arrival.Dispose();
            Log.TaskSkipped(logger, task.Id, task.Lane.WireName(), error);
            await outcome.EndWithoutRunAsync(task, attempt, TaskStatuses.Duplicate, TaskEvent.Duplicate, error, DateTimeOffset.UtcNow);
            return;
        }
        // Back after a crash or a lost connection (the broker's flag, or a suspect's copy from the hold): it may have completed.
        var redelivered = context.ReceiveContext.Redelivered || crashes > 0;
        var duplicate = ledger.IsDuplicate(task.Id, redelivered, out var first);
        if (duplicate && first is { State: TaskLedger.Known.Running } && DateTimeOffset.UtcNow - first.At > DeferAtMost)
            duplicate = false; // the run it points at went quiet (its consumer may have lost the broker and its events): run this copy
        if (!duplicate && redelivered
            && await redeliveries.CompletedResultAsync(task, context.CancellationToken) is { } done)
        {
            // Its result is stored (history stream) but the delivery came back: the consumer that ran it died before its ack.
            ledger.Record(task.Id, TaskLedger.Known.Completed, done.Consumer);
            first = new TaskLedger.Entry(TaskLedger.Known.Completed, done.Consumer, done.FinishedAt);
            duplicate = true;
        }
        if (duplicate || running.TryStart(task) is not { } run)
        {
            arrival.Dispose();
            if (first is not { State: TaskLedger.Known.Completed })
            {
                // Running (here or elsewhere) but not completed: that run may still fail (e.g. its broker connection is gone and this
                // copy came back without the redelivered flag after a broker crash), so the copy is never dropped: it comes back later.
                await outcome.HoldAsync(task, attempt, properties, DeferDelay, $"same id running on {first?.Consumer ?? "this consumer"}");
                return;
            }
            var where = $"{first.State.ToString().ToLowerInvariant()} on {first.Consumer ?? "this consumer"} at {first.At:O}";
            Log.TaskSkipped(logger, task.Id, task.Lane.WireName(), "duplicate id, " + where);
            await outcome.EndWithoutRunAsync(task, attempt, TaskStatuses.Duplicate, TaskEvent.Duplicate, $"task id '{task.Id}' is {where}; not run twice", DateTimeOffset.UtcNow);
            return;
        }

        try
        {
            await RunAsync(context, task, attempt, run, properties, arrival);
        }
        catch (TaskDeadLetteredException ex)
        {
            answers.MarkAnswered(context.ReceiveContext, ex.Message); // TaskOutcome published its result
            throw;
        }
        catch (Exception ex) when (ex is not InvalidTaskException)
        {
            await outcome.AbandonedAsync(task, attempt, ex);
            throw;
        }
        finally
        {
            running.Finish(run);
        }
    }

    async Task RunAsync(ConsumeContext context, ExternalTask task, int attempt, RunningTasks.Run run, IReadOnlyBasicProperties? properties, IDisposable arrival)
    {
        var mode = modes.For(task.Lane);
        execution.EnsureHandled(task, mode);

        using var stopping = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, run.Cancel.Token);
        TaskAdmission.Admitted slot;
        using (var waitedTooLong = new CancellationTokenSource(TimeSpan.FromSeconds(options.Value.Gate.ReturnWaitingAfterSeconds)))
        using (var admitting = CancellationTokenSource.CreateLinkedTokenSource(stopping.Token, lifetime.ApplicationStopping, waitedTooLong.Token))
        {
            try
            {
                slot = await admission.AdmitAsync(task.Lane, admitting.Token, arrival, task.SessionId);
            }
            catch (LaneSlots.LanePausedException)
            {
                // An operator paused the lane while this task waited here: back to the lane, untouched, before the endpoint stops.
                await outcome.ReturnToLaneAsync(task, attempt, properties, PausedByOperator);
                return;
            }
            catch (OperationCanceledException) when (lifetime.ApplicationStopping.IsCancellationRequested && !stopping.IsCancellationRequested)
            {
                // Draining: a task that has not started goes back to its lane (confirmed) instead of running here.
                await outcome.ReturnToLaneAsync(task, attempt, properties, "consumer draining; returned to its lane");
                return;
            }
            catch (OperationCanceledException) when (run.Cancel.IsCancellationRequested)
            {
                // Cancelled while it waited for a slot or a fleet token: it never started.
                await outcome.EndWithoutRunAsync(task, attempt, TaskStatuses.Cancelled, TaskEvent.Cancelled, "cancelled before it started", DateTimeOffset.UtcNow);
                return;
            }
            catch (OperationCanceledException) when (waitedTooLong.IsCancellationRequested && !stopping.IsCancellationRequested)
            {
                // Held here longer than a delivery may stay unacked (the broker's consumer_timeout closes the channel): back to
                // its lane (published and confirmed, then acked: no delivery counted on a quorum queue), where any consumer can take it.
                await outcome.ReturnToLaneAsync(task, attempt, properties,
                    $"waited {options.Value.Gate.ReturnWaitingAfterSeconds} s here for a slot (Gate:ReturnWaitingAfterSeconds); returned to its lane");
                return;
            }
        }
        RunEnd end;
        DateTimeOffset startedAt;
        var clock = new Stopwatch();
        var progress = outcome.Progress(task, attempt);
        // The slot is given back when the handler returns: the result's confirm, the ack and the events go on without it
        // (the delivery is still acked only after its result is confirmed). A session limit counts the task until its result
        // is confirmed (end of this method): a crash before that cannot leave the session's next task run before this one's rerun.
        using var sessionTurn = slot.KeepSession();
        await using (slot)
        {
            // The handler and its scoped dependencies live for this run. One that cannot be built is the consumer's problem
            // (dead-lettered with "consumer: could not finish the task"), not a failed run to retry.
            await using var scope = execution.CreateScope();
            var handler = execution.HandlerFor(task, mode, scope.ServiceProvider);
            startedAt = DateTimeOffset.UtcNow;
            activity.Started(task.Lane);
            clock.Start();
            try
            {
                await outcome.StartedAsync(task, attempt, mode.Mode, startedAt);
                end = await execution.RunAsync(task, attempt, run, handler, mode, startedAt, progress, stopping.Token, context.CancellationToken);
                await progress.DisposeAsync(); // the latest report goes out now (no confirm wait), before the run's result and end
            }
            finally
            {
                clock.Stop();
                activity.Finished(task.Lane);
            }
        }
        await outcome.RunEndedAsync(task, attempt, properties, startedAt, clock.Elapsed, end);
    }

    /// <summary>
    /// Why a task with a <c>dedup_key</c> that came due does not run, or null when it runs. Once (the default): the broker says
    /// whether another task holds the key (the first to come due within its window). Debounce: the key's latest-task record
    /// names a later task that replaced this one.
    /// </summary>
    async Task<string?> DedupErrorAsync(ExternalTask task, string key, IReadOnlyBasicProperties? properties, CancellationToken cancellationToken)
    {
        var window = task.DedupWindowOrDefaultMs;
        if (task.Debounced)
            return await dedup.LatestAsync(key, window, cancellationToken) is { } latest && latest != task.Id ? DedupClaims.ReplacedError(key, latest) : null;
        return await dedup.ClaimAsync(key, window, task.Id, DedupClaims.CopyOf(properties), cancellationToken) is { } holder ? DedupClaims.HeldError(key, holder, window) : null;
    }

    /// <summary>
    /// When a delayed task is due: the time it carries from the delay tree (<see cref="BrokerNames.DueHeader"/>, set by whoever
    /// routed it there: a task that came out of the tree, retried or put back since, is not delayed again), else its
    /// <c>not_before</c> or <c>created_at</c> + <c>delay_ms</c>; null for a task that is not delayed.
    /// </summary>
    internal static DateTimeOffset? DueAt(ExternalTask task, IReadOnlyBasicProperties? properties) =>
        task.DelayMs is null && task.NotBefore is null ? null : DelayTopology.DueOf(properties?.Headers) ?? TaskParser.DueAt(task);

    ExternalTask ReadTask(ConsumeContext context, LaneQueueOptions settings)
    {
        var queue = BrokerHost.QueueOf(context.ReceiveContext.InputAddress);
        try
        {
            var task = TaskParser.Parse(context.ReceiveContext.Body.GetBytes(), settings.MaxPayloadBytes);
            if (settings.Topology == LaneTopology.QueuePerLane && BrokerNames.LaneOfQueue(queue) != task.Lane)
                throw new InvalidTaskException("lane", $"the task says '{task.Lane.WireName()}' but was routed to queue '{queue}'; publish with routing key = lane");
            return task;
        }
        catch (InvalidTaskException ex)
        {
            Log.MessageRejected(logger, queue, ex.Message);
            throw;
        }
    }
}
