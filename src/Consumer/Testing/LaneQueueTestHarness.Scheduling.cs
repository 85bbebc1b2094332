using System.Text.Json;
using LaneQueue.Contracts;
using LaneQueue.Producer;
using Microsoft.Extensions.DependencyInjection;

namespace LaneQueue.Consumer.Testing;

/// <summary>
/// The harness's task lifecycle around the consumer's own scheduler. One dispatcher at a time (<see cref="PumpAsync"/>) asks
/// <see cref="LaneScheduler"/> (the decision core <see cref="LaneSlots"/> carries out on a consumer) for the next task under the
/// lock: lane order with aging, operator pauses, lane limits, reserved slots, the budget, rate-limit tokens; when the
/// highest waiting lane finds the budget full, the lowest-lane preemptible task below it is asked to yield. Every task is
/// in memory here, so there is no broker work to hold a slot for. The run then follows <see cref="LaneTaskConsumer"/> step
/// by step, with the same results, events, attempts and dead-letter reasons.
/// </summary>
public sealed partial class LaneQueueTestHarness
{
    /// <summary>A task waiting in a lane: the task as read from the wire, and its retry count (the <c>x-lanequeue-attempt</c> header).</summary>
    sealed class Entry(ExternalTask task, int attempt, string? lastError)
    {
        public ExternalTask Task { get; } = task;
        public int Attempt { get; } = attempt;
        public string? LastError { get; } = lastError;
    }

    /// <summary>How often a lane held back only by a rate limit is looked at again.</summary>
    const int RateLimitPollMs = 10;

    readonly LaneScheduler _scheduler;
    readonly HashSet<string> _runningIds = new(StringComparer.Ordinal);
    readonly HashSet<Entry> _retrying = [];
    readonly Dictionary<(string Key, long WindowMs), (string Holder, DateTimeOffset Until)> _dedupKeys = [];
    readonly Dictionary<string, List<Entry>> _deferred = new(StringComparer.Ordinal);
    readonly List<Task> _runTasks = [];
    readonly List<StartedTask> _startLog = [];
    readonly List<ExternalTaskResult> _results = [];
    readonly List<TaskEvent> _events = [];
    readonly List<DeadLetter> _deadLetters = [];
    readonly List<Exception> _faults = [];
    readonly List<Subscription> _subscriptions = [];
    readonly ResultWaits _resultWatchers = new();
    readonly Dictionary<string, TaskCompletionSource<ExternalCompletion>> _externalWaits = new(StringComparer.Ordinal);
    readonly Dictionary<string, PendingExternalTask> _externalPending = new(StringComparer.Ordinal);
    int _eventsInFlight;
    bool _pumping;
    bool _pumpAgain;
    Task? _pumpTask;
    int? _wakeAfterMs;
    TaskCompletionSource _idle;

    void RequestPump()
    {
        lock (_lock)
        {
            if (_disposed)
                return;
            if (_pumping)
            {
                _pumpAgain = true;
                return;
            }
            _pumping = true;
            _pumpAgain = false;
            _pumpTask = Task.Run(PumpAsync);
        }
    }

    /// <summary>Starts what can start, one task at a time, until nothing can; the only place tasks start.</summary>
    async Task PumpAsync()
    {
        try
        {
            while (true)
            {
                Entry? next;
                lock (_lock)
                {
                    next = PickLocked();
                    if (next is null)
                    {
                        if (_pumpAgain && !_disposed)
                        {
                            _pumpAgain = false;
                            continue;
                        }
                        _pumping = false;
                        if (_wakeAfterMs is { } ms && !_disposed)
                            _wake.Change(ms, Timeout.Infinite);
                        SignalIfIdleLocked();
                        return;
                    }
                }
                await DispatchAsync(next).ConfigureAwait(false);
            }
        }
        catch (Exception ex)
        {
            lock (_lock)
            {
                _faults.Add(ex);
                _pumping = false;
                SignalIfIdleLocked();
            }
        }
    }

    /// <summary>The next task to start, with its slot taken (the scheduler's decision); null when none can start now.</summary>
    Entry? PickLocked()
    {
        _wakeAfterMs = null;
        if (!_open || _disposed)
            return null;
        var decision = _scheduler.Decide(_time.GetUtcNow(), _rateLimits.CanStart);
        if (decision.Contended is { } contended)
            _runs.RequestYieldBelow(contended);
        if (decision.Start is null && SessionLanes.All.Any(lane => _scheduler.Waiting(lane) > 0 && !_scheduler.IsPaused(lane) && !_rateLimits.CanStart(lane)))
            WakeAfter(RateLimitPollMs); // a lane held back only by its rate limit: look again soon
        return (Entry?)decision.Start?.State;
    }

    void WakeAfter(int ms) => _wakeAfterMs = _wakeAfterMs is { } due ? Math.Min(due, ms) : ms;

    void ReleaseLocked(ExternalTask task) => _scheduler.Finished(task.Lane, task.SessionId);

    IEnumerable<Entry> WaitingLocked(SessionLane lane) => _scheduler.WaitingIn(lane).Select(ticket => (Entry)ticket.State!);

    /// <summary>
    /// The delivery checks of <see cref="LaneTaskConsumer"/> in its order (cancelled, duplicate id, handler), then the start.
    /// On the dispatcher only, so starts are recorded in the order they are decided.
    /// </summary>
    async Task DispatchAsync(Entry entry)
    {
        var task = entry.Task;
        if (_ledger.IsCancelled(task))
        {
            lock (_lock)
            {
                ReleaseLocked(task);
                FinishUnstartedLocked(entry, TaskStatuses.Cancelled, TaskEvent.Cancelled, "cancelled before it started");
            }
            return;
        }
        lock (_lock)
        {
            if (DedupErrorLocked(task) is { } error)
            {
                ReleaseLocked(task);
                FinishUnstartedLocked(entry, TaskStatuses.Duplicate, TaskEvent.Duplicate, error);
                return;
            }
            if (_runningIds.Contains(task.Id))
            {
                // The consumer parks a copy of an id that is running and looks at it again later; here: when that run ends.
                ReleaseLocked(task);
                if (!_deferred.TryGetValue(task.Id, out var copies))
                    _deferred[task.Id] = copies = [];
                copies.Add(entry);
                return;
            }
            if (_ledger.Lookup(task.Id) is { State: TaskLedger.Known.Completed } first)
            {
                ReleaseLocked(task);
                var where = $"{first.State.ToString().ToLowerInvariant()} on {first.Consumer ?? "this consumer"} at {first.At:O}";
                FinishUnstartedLocked(entry, TaskStatuses.Duplicate, TaskEvent.Duplicate, $"task id '{task.Id}' is {where}; not run twice");
                return;
            }
        }

        var run = _runs.TryStart(task) ?? throw new InvalidOperationException($"task '{task.Id}' is already registered as running");
        if (_ledger.IsCancelled(task))
        {
            // cancelled between the first look and now
            _runs.Finish(run);
            lock (_lock)
            {
                ReleaseLocked(task);
                FinishUnstartedLocked(entry, TaskStatuses.Cancelled, TaskEvent.Cancelled, "cancelled before it started");
            }
            return;
        }

        var mode = _modes.For(task.Lane);
        var scope = ServiceProvider.CreateAsyncScope();
        ITaskHandler? handler;
        try
        {
            handler = mode.Mode == TaskHandlerMode.External ? null : _handlers.Resolve(task.CommandType, scope.ServiceProvider)
                ?? throw new InvalidTaskException("command_type",
                    $"'{task.CommandType}' has no handler on consumer {_settings.ConsumerName}; known: {string.Join(", ", _handlers.CommandTypes)}");
        }
        catch (Exception ex)
        {
            await scope.DisposeAsync().ConfigureAwait(false);
            _runs.Finish(run);
            lock (_lock)
            {
                ReleaseLocked(task);
                var reason = ex.Message;
                if (ex is not InvalidTaskException)
                {
                    // The consumer's "abandoned" path (a handler it cannot build): command.failed, then the error pipe's answer.
                    _ledger.Record(task.Id, TaskLedger.Known.Unknown, _settings.ConsumerName);
                    PublishEventLocked(Event(TaskEvent.Failed, task, entry.Attempt, "abandoned: " + ex.Message));
                    reason = TaskErrors.ConsumerProblem(ex);
                }
                // As on the fleet: a failed result and command.dead_lettered, no retry (a command type nobody handles, or the above).
                PublishResultLocked(task, entry.Attempt, DateTimeOffset.UtcNow, TaskStatuses.Failed, reason, TaskJson.EmptyObject);
                PublishEventLocked(Event(TaskEvent.DeadLettered, task, entry.Attempt, reason));
                AddDeadLetterLocked(entry, reason, entry.LastError);
            }
            return;
        }

        _rateLimits.Take(task.Lane);
        var startedAt = DateTimeOffset.UtcNow;
        lock (_lock)
        {
            _runningIds.Add(task.Id);
            _ledger.Record(task.Id, TaskLedger.Known.Running, _settings.ConsumerName);
            _startLog.Add(new StartedTask(task.Id, task.Lane, entry.Attempt, startedAt));
            PublishEventLocked(TaskRecords.Started(task, entry.Attempt, _settings.ConsumerName, _settings.HistoryPayloadMaxBytes));
            _runTasks.RemoveAll(t => t.IsCompleted);
            _runTasks.Add(Task.Run(() => RunAsync(entry, run, handler, mode, scope, startedAt)));
        }
    }

    async Task RunAsync(Entry entry, RunningTasks.Run run, ITaskHandler? handler, LaneHandlerConfig mode, AsyncServiceScope scope, DateTimeOffset startedAt)
    {
        var task = entry.Task;
        try
        {
            await using (scope.ConfigureAwait(false))
                await LifecycleAsync(entry, run, handler, mode, startedAt).ConfigureAwait(false);
        }
        catch (Exception ex) when (!_disposing.IsCancellationRequested)
        {
            // As the consumer: not completed (e.g. a result that cannot be serialized): "abandoned", and the message is dead-lettered.
            lock (_lock)
            {
                _ledger.Record(task.Id, TaskLedger.Known.Unknown, _settings.ConsumerName);
                PublishEventLocked(Event(TaskEvent.Failed, task, entry.Attempt, "abandoned: " + ex.Message));
                AddDeadLetterLocked(entry, ex.Message, entry.LastError);
            }
        }
        catch (Exception) when (_disposing.IsCancellationRequested)
        {
            // the harness is stopping: the run just ends
        }
        finally
        {
            _runs.Finish(run);
            lock (_lock)
            {
                ReleaseLocked(task);
                _runningIds.Remove(task.Id);
                if (_deferred.Remove(task.Id, out var copies))
                {
                    foreach (var copy in copies)
                        EnqueueLocked(copy);
                }
                SignalIfIdleLocked();
            }
            RequestPump();
        }
    }

    /// <summary><see cref="LaneTaskConsumer"/>'s run, from the timeout on: handler (or external worker), then one end state.</summary>
    async Task LifecycleAsync(Entry entry, RunningTasks.Run run, ITaskHandler? handler, LaneHandlerConfig mode, DateTimeOffset startedAt)
    {
        var task = entry.Task;
        var attempt = entry.Attempt;
        var timeoutMs = TaskExecution.TimeoutFor(task, mode, _settings.Queue);
        using var stopping = CancellationTokenSource.CreateLinkedTokenSource(_disposing.Token, run.Cancel.Token);
        var progress = new ProgressReports(value =>
        {
            lock (_lock)
                PublishEventLocked(TaskRecords.Progress(task, attempt, _settings.ConsumerName, value));
            return Task.CompletedTask;
        }, TimeProvider.System);
        RunEnd end;
        try
        {
            end = await TaskExecution.InvokeAsync(task, attempt, _settings.ConsumerName, run, handler, mode, timeoutMs, startedAt, progress,
                (timeout, cancellationToken) => WaitForExternalWorkerAsync(entry, timeout, cancellationToken),
                () =>
                {
                    lock (_lock)
                        PublishEventLocked(Event(TaskEvent.ExternalPending, task, attempt));
                    return Task.CompletedTask;
                }, stopping.Token, _disposing.Token).ConfigureAwait(false);
        }
        finally
        {
            await progress.DisposeAsync().ConfigureAwait(false); // the latest report before the run's result, as on the fleet
        }

        switch (end)
        {
            case RunEnd.Cancelled:
                lock (_lock)
                {
                    _ledger.Record(task.Id, TaskLedger.Known.Completed, _settings.ConsumerName);
                    PublishResultLocked(task, attempt, startedAt, TaskStatuses.Cancelled, "cancelled while running", TaskJson.EmptyObject);
                    PublishEventLocked(Event(TaskEvent.Cancelled, task, attempt, "cancelled while running"));
                }
                return;
            case RunEnd.Failed failed:
                Fail(entry, failed.TimedOut, failed.Error, startedAt, failed.Exception);
                return;
            case RunEnd.Yielded yielded:
                lock (_lock)
                {
                    _ledger.Record(task.Id, TaskLedger.Known.Unknown, _settings.ConsumerName);
                    PublishEventLocked(Event(TaskEvent.Preempted, task, attempt));
                    EnqueueLocked(new Entry(task with { Checkpoint = yielded.Checkpoint }, attempt, entry.LastError));
                }
                return;
            case RunEnd.Completed completed:
                lock (_lock)
                {
                    PublishResultLocked(task, attempt, startedAt, TaskStatuses.Completed, null, completed.Result);
                    _ledger.Record(task.Id, TaskLedger.Known.Completed, _settings.ConsumerName);
                    PublishEventLocked(Event(TaskEvent.Completed, task, attempt));
                }
                return;
        }
    }

    /// <summary>An External lane's run: announced by <c>command.external_pending</c>, ended by <see cref="CompleteExternalTaskAsync"/>.</summary>
    async Task<ExternalCompletion> WaitForExternalWorkerAsync(Entry entry, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var task = entry.Task;
        var waiter = new TaskCompletionSource<ExternalCompletion>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_lock)
        {
            if (!_externalWaits.TryAdd(task.Id, waiter))
                throw new InvalidOperationException($"task '{task.Id}' already waits for an external worker here");
            var announcedAt = DateTimeOffset.UtcNow;
            _externalPending[task.Id] = new PendingExternalTask
            {
                TaskId = task.Id,
                Lane = task.Lane,
                Consumer = _settings.ConsumerName,
                Attempt = entry.Attempt + 1,
                AnnouncedAt = announcedAt,
                Deadline = announcedAt + timeout,
            };
            PublishEventLocked(Event(TaskEvent.ExternalPending, task, entry.Attempt));
        }
        try
        {
            return await waiter.Task.WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"no external worker completed task '{task.Id}' within {timeout.TotalMilliseconds:0} ms");
        }
        finally
        {
            lock (_lock)
            {
                _externalWaits.Remove(task.Id);
                _externalPending.Remove(task.Id);
            }
        }
    }

    /// <summary>As the consumer: a retry after the policy's delay (back of its lane, attempt + 1), or the final result and a dead letter.</summary>
    void Fail(Entry entry, bool timedOut, string error, DateTimeOffset startedAt, Exception ex)
    {
        var task = entry.Task;
        var attempt = entry.Attempt;
        lock (_lock)
        {
            _ledger.Record(task.Id, TaskLedger.Known.Unknown, _settings.ConsumerName);
            PublishEventLocked(Event(timedOut ? TaskEvent.Timeout : TaskEvent.Failed, task, attempt, error));
            // A failure that can never succeed (a payload that does not fit a typed handler, PermanentTaskException, a result
            // that cannot be JSON) is not retried, as on the fleet.
            var retryable = !TaskErrors.IsPermanent(ex);
            if (retryable && _settings.Queue.RetryPolicy.DelayBefore(attempt + 1) is { } delay)
            {
                PublishEventLocked(Event(TaskEvent.Retry, task, attempt + 1, error) with { DelayMs = (long)delay.TotalMilliseconds });
                ScheduleRetryLocked(new Entry(task, attempt + 1, error), delay * RetryDelayScale);
                return;
            }
            var status = timedOut ? TaskStatuses.TimedOut : TaskStatuses.Failed;
            AddDeadLetterLocked(entry, retryable
                ? $"{status} after {attempt + 1} attempt(s): {error} ({ex.GetType().Name})"
                : $"{error} ({status}, not retried: it cannot succeed)", error);
            PublishResultLocked(task, attempt, startedAt, status, error, TaskJson.EmptyObject);
            PublishEventLocked(Event(TaskEvent.DeadLettered, task, attempt, error));
        }
    }

    /// <summary>
    /// <see cref="DedupClaims"/> in memory: null when <paramref name="taskId"/> holds the key (first within the window, or
    /// the holder again), else the duplicate's error, as the consumer words it.
    /// </summary>
    string? HeldKeyLocked(string key, long windowMs, string taskId)
    {
        var now = _time.GetUtcNow();
        if (_dedupKeys.TryGetValue((key, windowMs), out var held) && held.Until > now && held.Holder != taskId)
            return DedupClaims.HeldError(key, held.Holder, windowMs);
        if (!_dedupKeys.TryGetValue((key, windowMs), out held) || held.Until <= now)
            _dedupKeys[(key, windowMs)] = (taskId, now.AddMilliseconds(windowMs));
        return null;
    }

    void ScheduleRetryLocked(Entry retry, TimeSpan delay)
    {
        if (delay <= TimeSpan.Zero)
        {
            EnqueueLocked(retry);
            return;
        }
        _retrying.Add(retry);
        _ = ReturnAfterAsync(retry, delay);
    }

    async Task ReturnAfterAsync(Entry retry, TimeSpan delay)
    {
        try
        {
            await Task.Delay(delay, _time, _disposing.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return;
        }
        lock (_lock)
        {
            if (_retrying.Remove(retry))
                EnqueueLocked(retry);
            SignalIfIdleLocked();
        }
        RequestPump();
    }

    /// <summary>Puts a task at the back of its lane (a new task, a retry back from its delay, a task that yielded).</summary>
    void EnqueueLocked(Entry entry) => _scheduler.Add(new LaneScheduler.Ticket(entry.Task.Lane, _time.GetUtcNow(), entry, entry.Task.SessionId));

    /// <summary>Ends every waiting task (in a lane, in a retry delay or parked as a copy) that a cancel now covers.</summary>
    void SweepCancelledLocked()
    {
        foreach (var lane in SessionLanes.All)
        {
            foreach (var ticket in _scheduler.WaitingIn(lane).Where(t => _ledger.IsCancelled(((Entry)t.State!).Task)).ToList())
            {
                _scheduler.Remove(ticket);
                FinishUnstartedLocked((Entry)ticket.State!, TaskStatuses.Cancelled, TaskEvent.Cancelled, "cancelled before it started");
            }
        }
        foreach (var retry in _retrying.Where(r => _ledger.IsCancelled(r.Task)).ToList())
        {
            _retrying.Remove(retry);
            FinishUnstartedLocked(retry, TaskStatuses.Cancelled, TaskEvent.Cancelled, "cancelled before it started");
        }
        foreach (var (id, copies) in _deferred)
        {
            foreach (var copy in copies.Where(c => _ledger.IsCancelled(c.Task)).ToList())
            {
                copies.Remove(copy);
                FinishUnstartedLocked(copy, TaskStatuses.Cancelled, TaskEvent.Cancelled, "cancelled before it started");
            }
        }
    }

    /// <summary>A task that ends without running (cancelled before it started, duplicate id): result and event, as the consumer's FinishAsync.</summary>
    void FinishUnstartedLocked(Entry entry, string status, string eventName, string error)
    {
        var task = entry.Task;
        PublishResultLocked(task, entry.Attempt, DateTimeOffset.UtcNow, status, error, TaskJson.EmptyObject);
        if (status == TaskStatuses.Cancelled)
            _ledger.Record(task.Id, TaskLedger.Known.Completed, _settings.ConsumerName);
        PublishEventLocked(Event(eventName, task, entry.Attempt, error));
    }

    /// <summary>The result as the consumer sends it and a producer reads it (through the wire JSON).</summary>
    void PublishResultLocked(ExternalTask task, int attempt, DateTimeOffset startedAt, string status, string? error, JsonElement result)
    {
        var published = Wire(TaskRecords.Result(task, attempt, startedAt, status, error, result, _settings.ConsumerName));
        _results.Add(published);
        _resultWatchers.Complete(published, forget: true);
    }

    TaskEvent Event(string name, ExternalTask task, int attempt, string? error = null) => TaskRecords.Event(name, task, attempt, error, _settings.ConsumerName);

    /// <summary>Records an event and queues it for every subscriber whose pattern matches its routing key.</summary>
    void PublishEventLocked(TaskEvent taskEvent)
    {
        var published = Wire(taskEvent);
        _events.Add(published);
        var routingKey = BrokerNames.EventRoutingKey(published.Event, published.Lane);
        foreach (var subscription in _subscriptions)
        {
            if (TopicPattern.Matches(subscription.Pattern, routingKey) && subscription.Offer(published))
                _eventsInFlight++;
        }
    }

    async Task DeliverAsync(Subscription subscription)
    {
        await foreach (var taskEvent in subscription.Reader.ReadAllAsync().ConfigureAwait(false))
        {
            try
            {
                if (!subscription.Stopped)
                    await subscription.OnEvent(taskEvent).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                lock (_lock)
                    _faults.Add(ex);
            }
            finally
            {
                lock (_lock)
                {
                    _eventsInFlight--;
                    SignalIfIdleLocked();
                }
            }
        }
    }

    /// <summary>A dead letter as <c>DeadLetters.ListAsync</c> describes one: reason (<c>MT-Fault-Message</c>), runs, last error, body.</summary>
    void AddDeadLetterLocked(Entry entry, string reason, string? lastError)
    {
        var body = System.Text.Encoding.UTF8.GetString(TaskJson.Serialize(entry.Task));
        _deadLetters.Add(new DeadLetter(entry.Task.Id, entry.Task.Lane, reason, entry.Attempt + 1, lastError, DateTimeOffset.UtcNow,
            body.Length > 2000 ? body[..2000] + "…" : body));
    }

    static T Wire<T>(T value) => TaskJson.Deserialize<T>(TaskJson.Serialize(value));

    bool IsIdleLocked() =>
        _scheduler.InUse == 0 && !_pumping && _retrying.Count == 0 && _eventsInFlight == 0
        && (!_open || SessionLanes.All.All(lane => _scheduler.Waiting(lane) == 0 || _scheduler.IsPaused(lane)));

    void SignalIfIdleLocked()
    {
        if (_disposed || IsIdleLocked())
            _idle.TrySetResult();
        else if (_idle.Task.IsCompleted)
            _idle = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
