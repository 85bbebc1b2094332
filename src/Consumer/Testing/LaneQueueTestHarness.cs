using System.Text;
using System.Threading.Channels;
using LaneQueue.Contracts;
using LaneQueue.Producer;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace LaneQueue.Consumer.Testing;

/// <summary>
/// LaneQueue in one process, without RabbitMQ: for unit tests of task handlers and of code that submits tasks.
/// It is an <see cref="ILaneQueueProducer"/> (inject it where the application injects the producer) and runs the
/// handlers registered on <see cref="Consumer"/> with the consumer's rules: tasks validated as the producer does, four
/// lanes with a waiting higher-lane task started before waiting lower-lane tasks, per-lane max concurrency and the slot
/// budget, timeouts, retries per <see cref="RetryPolicy"/> then a dead letter, cancellation, pause and resume, yield with a
/// checkpoint, results and lifecycle events as the consumer publishes them, and recurring schedules fired as the fleet
/// monitor fires them (<see cref="AddScheduleAsync"/>).
/// </summary>
/// <remarks>
/// <para>
/// A new harness is <em>held</em>: tasks submitted before <see cref="Start"/> wait in their lanes, so a test can build a
/// backlog and then see in which order it starts (<see cref="Started"/>). Register handlers and services first: the
/// first <see cref="Start"/> builds <see cref="Services"/> into <see cref="ServiceProvider"/>, after which the collection
/// is read-only.
/// </para>
/// <para>
/// Not modelled: the broker and the fleet (one harness is one consumer with an ideal, instant lane gate), prefetch, the
/// gate's polling delay and hysteresis, redelivery and duplicates after crashes, broker or connection failures,
/// persistence, external workers other than <see cref="CompleteExternalTaskAsync"/>, the hand-over of schedule firing
/// between monitors. See docs/testing.md.
/// </para>
/// </remarks>
public sealed partial class LaneQueueTestHarness : ILaneQueueProducer, IFleetCommands, IAsyncDisposable
{
    readonly object _lock = new();
    readonly LaneQueueOptions _settings;
    readonly ServiceCollection _services = new();
    readonly TaskHandlers _handlers = new();
    readonly TaskLedger _ledger = new();
    readonly RunningTasks _runs = new();
    readonly LaneModes _modes;
    readonly HarnessRateLimits _rateLimits;
    readonly TimeProvider _time;
    readonly CancellationTokenSource _disposing = new();
    readonly Timer _wake;
    ServiceProvider? _provider;
    bool _open;
    bool _disposed;
    double _retryDelayScale;

    /// <summary>Creates a held harness (see <see cref="Start"/>) with the consumer's default options, changed by <paramref name="configure"/>.</summary>
    /// <param name="configure">Sets options as <c>AddLaneQueueConsumer(configure)</c> would: <see cref="LaneQueueOptions.SlotBudget"/>,
    /// <see cref="LaneQueueOptions.Queue"/> (per-lane max concurrency, <see cref="SessionQueueConfig.RetryPolicy"/>, timeouts,
    /// rate limit, priority boost, lane handler modes), <see cref="LaneQueueOptions.LaneRateLimits"/>,
    /// <see cref="LaneQueueOptions.Gate"/>, <see cref="LaneQueueOptions.MaxPayloadBytes"/>, <see cref="LaneQueueOptions.ConsumerName"/>
    /// (default <c>test-harness</c>). Broker settings are ignored.</param>
    /// <exception cref="OptionsValidationException">An option is out of range; the message names it.</exception>
    /// <param name="time">The harness's clock for its own waits and decisions: delayed tasks (a <c>not_before</c> is compared
    /// with it), retry delays, de-duplication windows, aging and the due times of recurring schedules (default: the
    /// system's). Pass a <c>FakeTimeProvider</c> and advance it to run a delayed task, a retry or a schedule's firings without waiting. The times in results and events, handlers' own waits and
    /// time-outs stay real time.</param>
    public LaneQueueTestHarness(Action<LaneQueueOptions>? configure = null, TimeProvider? time = null)
    {
        _time = time ?? TimeProvider.System;
        _settings = new LaneQueueOptions { ConsumerName = "test-harness" };
        configure?.Invoke(_settings);
        Validate(_settings);
        _modes = new LaneModes(Options.Create(_settings));
        _rateLimits = new HarnessRateLimits(_settings);
        // The consumer's scheduler; every task is in memory, so no slot is ever held for work at a broker.
        _scheduler = new LaneScheduler(SchedulerRules.From(_settings) with { HoldForReady = false });
        _wake = new Timer(_ => RequestPump());
        _idle = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        _handlers.Add<EchoHandler>(EchoHandler.CommandType);
        _handlers.Add<InterruptSessionHandler>(InterruptSessionHandler.CommandType);
        _services.AddLogging();
        _services.AddMetrics();
        _services.AddSingleton(Options.Create(_settings));
        _services.AddSingleton<ILaneQueueProducer>(this);
        _services.AddSingleton<IFleetCommands>(this);
        Consumer = new LaneQueueConsumerBuilder(_services, _handlers);
    }

    /// <summary>
    /// Handler registration, exactly as on the real consumer: <c>AddHandler&lt;T&gt;("type")</c>, delegate handlers,
    /// <c>AddBuiltInHandlers()</c>, <c>DefaultHandler("type")</c>. <c>echo</c> is always there.
    /// </summary>
    public LaneQueueConsumerBuilder Consumer { get; }

    /// <summary>
    /// The services handlers are built from (one scope per task run, as on the real consumer). Holds logging, metrics,
    /// <c>IOptions&lt;LaneQueueOptions&gt;</c> and this harness as <see cref="ILaneQueueProducer"/>; add your handlers'
    /// dependencies. Read-only once <see cref="ServiceProvider"/> is built.
    /// </summary>
    public IServiceCollection Services => _services;

    /// <summary>The provider built from <see cref="Services"/> (on first use, or by <see cref="Start"/>), with scope validation on.</summary>
    public IServiceProvider ServiceProvider
    {
        get
        {
            lock (_lock)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                if (_provider is null)
                {
                    _services.MakeReadOnly();
                    _provider = _services.BuildServiceProvider(new ServiceProviderOptions { ValidateScopes = true });
                }
                return _provider;
            }
        }
    }

    /// <summary>
    /// Multiplies the <see cref="RetryPolicy"/> delay before a retry goes back to its lane. 0 (the default): at once;
    /// 1: the real delays; 0.01: a hundredth of them. Events still report the policy's delay (<see cref="TaskEvent.DelayMs"/>).
    /// </summary>
    public double RetryDelayScale
    {
        get => Volatile.Read(ref _retryDelayScale);
        set
        {
            if (!double.IsFinite(value) || value < 0)
                throw new ArgumentOutOfRangeException(nameof(value), value, "RetryDelayScale must be a finite number, 0 or more");
            Volatile.Write(ref _retryDelayScale, value);
        }
    }

    /// <summary>Whether the harness starts tasks (after <see cref="Start"/>, until <see cref="Hold"/>).</summary>
    public bool IsStarted
    {
        get
        {
            lock (_lock)
                return _open;
        }
    }

    /// <summary>Starts running tasks, highest lane first; the first call builds <see cref="ServiceProvider"/>.</summary>
    public void Start()
    {
        _ = ServiceProvider;
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _open = true;
            SignalIfIdleLocked();
        }
        RequestPump();
    }

    /// <summary>Stops starting tasks (running ones go on) until <see cref="Start"/>: submitted tasks wait in their lanes.</summary>
    public void Hold()
    {
        lock (_lock)
        {
            _open = false;
            SignalIfIdleLocked();
        }
    }

    /// <summary>Every task start so far, in order (a retried or resumed task appears once per run).</summary>
    public IReadOnlyList<StartedTask> Started => Snapshot(_startLog);

    /// <summary>Every result so far, in order, as the consumer publishes them to <c>lanequeue.results</c>.</summary>
    public IReadOnlyList<ExternalTaskResult> Results => Snapshot(_results);

    /// <summary>Every lifecycle event so far, in order, as the consumer publishes them to <c>lanequeue.events</c>.</summary>
    public IReadOnlyList<TaskEvent> Events => Snapshot(_events);

    /// <summary>
    /// Tasks moved to their lane's dead-letter queue, with the reason the real consumer gives (<c>MT-Fault-Message</c>):
    /// failed or timed out with no retry left, no handler for the command type, or abandoned (e.g. a handler dependency
    /// that cannot be resolved). Recorded before the task's result (if any) is published.
    /// </summary>
    public IReadOnlyList<DeadLetter> DeadLetters => Snapshot(_deadLetters);

    /// <summary>Tasks running now.</summary>
    public int RunningCount
    {
        get
        {
            lock (_lock)
                return _runningIds.Count;
        }
    }

    /// <summary>Tasks waiting in their lanes now (not counting retries still in their delay).</summary>
    public int WaitingCount
    {
        get
        {
            lock (_lock)
                return _scheduler.WaitingTotal;
        }
    }

    /// <summary>
    /// Completes when nothing is left to happen without the test acting: no task running or being dispatched, no retry in
    /// its delay, every event delivered to <see cref="WatchEventsAsync"/> subscribers, and no task waiting in a lane that
    /// can run (tasks in a lane paused with <see cref="PauseLaneAsync"/>, or in any lane while the harness is held, may
    /// remain). Lower-lane tasks held back by waiting tasks of a paused higher lane count as not idle: on the real fleet
    /// they wait for aging. A recurring schedule's next firing is not pending work: idle says nothing about it.
    /// </summary>
    /// <exception cref="TimeoutException">Not idle within <paramref name="timeout"/>; the message says what is still going on.</exception>
    /// <exception cref="AggregateException">An event subscriber's callback threw (or the harness failed) since the last call.</exception>
    public async Task WhenIdleAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        Task idle;
        lock (_lock)
        {
            SignalIfIdleLocked();
            idle = _idle.Task;
        }
        try
        {
            await idle.WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            lock (_lock)
                throw new TimeoutException($"the harness was not idle after {timeout.TotalSeconds:0.###} s: {DescribeLocked()}");
        }
        ThrowFaults();
    }

    /// <summary>
    /// Validates a task (<see cref="InvalidTaskException"/> names the field, as the producer's submit) and puts it at the
    /// back of its lane. The handler sees the task as the consumer would read it from the wire.
    /// </summary>
    public Task SubmitTaskAsync(ExternalTask task, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(task);
        cancellationToken.ThrowIfCancellationRequested();
        TaskParser.Validate(task, _settings.MaxPayloadBytes);
        var wire = TaskParser.Parse(TaskJson.Serialize(task), _settings.MaxPayloadBytes);
        // A delayed task waits on the harness's clock (TimeProvider: a test can advance it), as in the fleet's delay tree.
        var now = _time.GetUtcNow();
        var due = wire.NotBefore ?? (wire.DelayMs is { } delayMs ? now.AddMilliseconds(delayMs) : null);
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            RecordLatestLocked(wire);
            if (due > now)
                ScheduleRetryLocked(new Entry(wire, 0, null), due.Value - now);
            else
                EnqueueLocked(new Entry(wire, 0, null));
            SignalIfIdleLocked();
        }
        RequestPump();
        return Task.CompletedTask;
    }

    /// <summary>Submits a task and waits for its result.</summary>
    /// <exception cref="TimeoutException">No result within <paramref name="timeout"/> (the message says why, when the harness knows).</exception>
    public async Task<ExternalTaskResult> SubmitAndWaitAsync(ExternalTask task, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(task);
        var wait = await WatchResultAsync(task.Id, cancellationToken).ConfigureAwait(false);
        try
        {
            await SubmitTaskAsync(task, cancellationToken).ConfigureAwait(false);
            return await wait.WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            string why;
            lock (_lock)
                why = WhyNoResultLocked(task);
            throw new TimeoutException($"no result for task '{task.Id}' within {timeout.TotalSeconds:0.###} s{why}");
        }
        finally
        {
            _resultWatchers.Remove(task.Id);
        }
    }

    /// <summary>
    /// Starts waiting for a task's next result (results published before this call are in <see cref="Results"/>).
    /// Like the producer, waits on the same id at the same time share one result.
    /// </summary>
    public Task<Task<ExternalTaskResult>> WatchResultAsync(string taskId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(taskId);
        cancellationToken.ThrowIfCancellationRequested();
        lock (_lock)
            ObjectDisposedException.ThrowIf(_disposed, this);
        return Task.FromResult(_resultWatchers.Add(taskId).Result);
    }

    /// <inheritdoc />
    public Task StopWatchingResultAsync(string taskId)
    {
        _resultWatchers.Remove(taskId);
        return Task.CompletedTask;
    }

    /// <summary>Cancels a task: waiting (or waiting for a retry), it ends <c>cancelled</c> at once; running, its token fires.</summary>
    public Task CancelTaskAsync(string taskId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(taskId);
        return CancelAsync(new FleetCommand { Command = FleetCommand.Cancel, TaskId = taskId });
    }

    /// <summary>Cancels every task of a session created before now, waiting or running.</summary>
    public Task CancelSessionAsync(string sessionId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(sessionId);
        return CancelAsync(new FleetCommand { Command = FleetCommand.Cancel, SessionId = sessionId });
    }

    Task CancelAsync(FleetCommand command)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _ledger.Apply(command);
            SweepCancelledLocked();
            SignalIfIdleLocked();
        }
        _runs.CancelWhere(_ledger.IsCancelled);
        RequestPump();
        return Task.CompletedTask;
    }

    /// <summary>Interrupts a session as the fleet does: its running tasks are asked to yield (preemptible ones), or cancelled.</summary>
    public Task InterruptSessionAsync(string sessionId, bool cancel = false, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(sessionId);
        lock (_lock)
            ObjectDisposedException.ThrowIf(_disposed, this);
        _runs.Interrupt(sessionId, DateTimeOffset.UtcNow, cancel);
        return Task.CompletedTask;
    }

    /// <summary>The <c>lanequeue.interrupt</c> handler's fleet command, applied here as the fleet applies it.</summary>
    Task IFleetCommands.SendAsync(FleetCommand command, CancellationToken cancellationToken) =>
        command.Command == FleetCommand.Interrupt && command.SessionId is { Length: > 0 } session
            ? InterruptSessionAsync(session, command.Mode == FleetCommand.InterruptCancel, cancellationToken)
            : throw new NotSupportedException($"the harness applies only interrupts sent by handlers, not '{command.Command}'");

    /// <summary>Holds a lane: its waiting tasks stay (and, as on the fleet, still hold back lower lanes); running ones go on.</summary>
    public Task PauseLaneAsync(SessionLane lane, CancellationToken cancellationToken = default) => SetPaused(lane, true);

    /// <summary>Resumes a lane paused with <see cref="PauseLaneAsync"/>.</summary>
    public Task ResumeLaneAsync(SessionLane lane, CancellationToken cancellationToken = default) => SetPaused(lane, false);

    Task SetPaused(SessionLane lane, bool paused)
    {
        if (!Enum.IsDefined(lane))
            throw new ArgumentOutOfRangeException(nameof(lane), lane, "not a lane");
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _scheduler.SetPaused(lane, paused);
            SignalIfIdleLocked();
        }
        RequestPump();
        return Task.CompletedTask;
    }

    /// <summary>Sets a lane's handler mode, as the producer's fleet command <c>set_handler</c> does on every consumer.</summary>
    public Task SetLaneHandlerAsync(SessionLane lane, TaskHandlerMode mode, long? timeoutMs = null, CancellationToken cancellationToken = default)
    {
        if (!Enum.IsDefined(lane))
            throw new ArgumentOutOfRangeException(nameof(lane), lane, "not a lane");
        _modes.Set(lane, new LaneHandlerConfig { Mode = mode, TimeoutMs = timeoutMs ?? _modes.For(lane).TimeoutMs });
        return Task.CompletedTask;
    }

    /// <summary>
    /// Completes a task of an External lane (one that waits for it, announced by a <c>command.external_pending</c> event).
    /// </summary>
    /// <exception cref="TaskRejectedException">No task waits for this completion, as the broker returns it unroutable.</exception>
    public Task CompleteExternalTaskAsync(ExternalCompletion completion, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(completion);
        TaskCompletionSource<ExternalCompletion>? waiter;
        lock (_lock)
            _externalWaits.TryGetValue(completion.TaskId, out waiter);
        if (waiter is null || !waiter.TrySetResult(completion))
            throw new TaskRejectedException($"the broker did not take the completion of external task '{completion.TaskId}' (is a consumer waiting for it?): unroutable");
        return Task.CompletedTask;
    }

    /// <summary>The External-lane tasks that wait for <see cref="CompleteExternalTaskAsync"/>, by lane, then announcement.</summary>
    public Task<IReadOnlyList<PendingExternalTask>> GetPendingExternalTasksAsync(CancellationToken cancellationToken = default)
    {
        lock (_lock)
            return Task.FromResult<IReadOnlyList<PendingExternalTask>>([.. _externalPending.Values.OrderBy(t => t.Lane).ThenBy(t => t.AnnouncedAt).ThenBy(t => t.TaskId, StringComparer.Ordinal)]);
    }

    /// <summary>The task's events and results recorded by this harness (what the history stream holds on a fleet).</summary>
    public Task<TaskHistory> GetTaskHistoryAsync(string taskId, TimeSpan? lookBack = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(taskId);
        var since = DateTimeOffset.UtcNow - (lookBack ?? TimeSpan.FromDays(7));
        return Task.FromResult(new TaskHistory
        {
            TaskId = taskId,
            Events = [.. Events.Where(e => e.TaskId == taskId && e.At >= since)],
            Results = [.. Results.Where(r => r.TaskId == taskId && r.FinishedAt >= since)],
        });
    }

    /// <summary>
    /// Follows lifecycle events published from now on whose routing key <c>&lt;event&gt;.&lt;lane&gt;</c> (e.g.
    /// <c>command.completed.query</c>) matches the topic <paramref name="pattern"/> (<c>*</c> one word, <c>#</c> any).
    /// Events reach <paramref name="onEvent"/> one at a time, in order, off the harness's own threads; an exception it
    /// throws is reported by <see cref="WhenIdleAsync"/>. Dispose the result to stop.
    /// </summary>
    public Task<IAsyncDisposable> WatchEventsAsync(Func<TaskEvent, Task> onEvent, string pattern = "command.#", CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(onEvent);
        ArgumentException.ThrowIfNullOrEmpty(pattern);
        var subscription = new Subscription(this, pattern, onEvent);
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _subscriptions.Add(subscription);
        }
        subscription.Delivery = Task.Run(() => DeliverAsync(subscription));
        return Task.FromResult<IAsyncDisposable>(subscription);
    }

    /// <summary>Stops: running handlers have their token fired and are awaited (briefly); nothing more starts; waits end.</summary>
    public async ValueTask DisposeAsync()
    {
        Task? pump;
        Subscription[] subscriptions;
        lock (_lock)
        {
            if (_disposed)
                return;
            _disposed = true;
            _open = false;
            pump = _pumpTask;
            subscriptions = [.. _subscriptions];
            _subscriptions.Clear();
        }
        StopSchedules();
        await _disposing.CancelAsync().ConfigureAwait(false);
        await _wake.DisposeAsync().ConfigureAwait(false);
        if (pump is not null)
            await SwallowAsync(pump).ConfigureAwait(false);
        Task[] runs;
        lock (_lock)
            runs = [.. _runTasks];
        await SwallowAsync(Task.WhenAll(runs)).ConfigureAwait(false);
        foreach (var subscription in subscriptions)
            subscription.Stop();
        lock (_lock)
        {
            _resultWatchers.CancelAll();
            foreach (var waiter in _externalWaits.Values)
                waiter.TrySetCanceled();
            _externalWaits.Clear();
            _idle.TrySetResult();
        }
        if (_provider is not null)
            await _provider.DisposeAsync().ConfigureAwait(false);
        _rateLimits.Dispose();
        _disposing.Dispose();
    }

    static async Task SwallowAsync(Task task)
    {
        try
        {
            await task.WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or TimeoutException)
        {
            // stopping: runs end at their fired token; one that still hangs is abandoned, as the consumer abandons it
        }
    }

    void ThrowFaults()
    {
        Exception[] faults;
        lock (_lock)
        {
            faults = [.. _faults];
            _faults.Clear();
        }
        if (faults.Length > 0)
            throw new AggregateException($"{faults.Length} error(s) in WatchEventsAsync callbacks or in the harness", faults);
    }

    IReadOnlyList<T> Snapshot<T>(List<T> list)
    {
        lock (_lock)
            return [.. list];
    }

    static void Validate(LaneQueueOptions options)
    {
        var problems = LaneQueueOptionsValidator.SchedulingProblems(options).ToList();
        if (problems.Count > 0)
            throw new OptionsValidationException(Microsoft.Extensions.Options.Options.DefaultName, typeof(LaneQueueOptions), problems);
    }

    /// <summary>Why a task has no result yet, for a time-out message.</summary>
    string WhyNoResultLocked(ExternalTask task)
    {
        var reasons = new StringBuilder();
        if (_deadLetters.LastOrDefault(d => d.TaskId == task.Id) is { } letter)
            reasons.Append($"; it was dead-lettered without a result: {letter.Reason}");
        if (_runningIds.Contains(task.Id))
            reasons.Append("; it is still running");
        if (WaitingLocked(task.Lane).Any(e => e.Task.Id == task.Id))
        {
            reasons.Append($"; it is waiting in lane '{task.Lane.WireName()}'");
            if (!_open)
                reasons.Append(" and the harness is held (call Start())");
            else if (_scheduler.IsPaused(task.Lane))
                reasons.Append(", which is paused (ResumeLaneAsync)");
        }
        if (_retrying.Any(e => e.Task.Id == task.Id))
            reasons.Append("; it waits for a retry (RetryDelayScale scales the delay)");
        return reasons.ToString();
    }

    /// <summary>What keeps the harness from being idle.</summary>
    string DescribeLocked()
    {
        var parts = new List<string>();
        if (_runningIds.Count > 0)
            parts.Add($"running: {string.Join(", ", _runningIds.Order(StringComparer.Ordinal).Take(10))}");
        foreach (var lane in SessionLanes.All)
        {
            var waiting = _scheduler.Waiting(lane);
            if (waiting == 0)
                continue;
            var why = !_open ? "harness held"
                : _scheduler.IsPaused(lane) ? "lane paused"
                : "waiting for a slot (higher lanes first, aging: Queue:PriorityBoost), its lane limit or a rate-limit token";
            parts.Add($"{waiting} waiting in {lane.WireName()} ({why})");
        }
        if (_retrying.Count > 0)
            parts.Add($"{_retrying.Count} retr{(_retrying.Count == 1 ? "y" : "ies")} in their delay (RetryDelayScale = {RetryDelayScale})");
        if (_eventsInFlight > 0)
            parts.Add($"{_eventsInFlight} event(s) not yet handled by WatchEventsAsync callbacks");
        if (_pumping)
            parts.Add("dispatching");
        return parts.Count == 0 ? "nothing pending (idle now)" : string.Join("; ", parts);
    }

    /// <summary>A <see cref="WatchEventsAsync"/> subscriber: its own ordered queue of events and delivery loop.</summary>
    sealed class Subscription(LaneQueueTestHarness harness, string pattern, Func<TaskEvent, Task> onEvent) : IAsyncDisposable
    {
        readonly Channel<TaskEvent> _queue = Channel.CreateUnbounded<TaskEvent>(new UnboundedChannelOptions { SingleReader = true });
        volatile bool _stopped;

        public string Pattern { get; } = pattern;
        public Func<TaskEvent, Task> OnEvent { get; } = onEvent;
        public Task? Delivery { get; set; }
        public bool Stopped => _stopped;
        public ChannelReader<TaskEvent> Reader => _queue.Reader;

        /// <summary>Queues an event (under the harness lock); false when the subscription has stopped.</summary>
        public bool Offer(TaskEvent taskEvent) => !_stopped && _queue.Writer.TryWrite(taskEvent);

        public void Stop()
        {
            _stopped = true;
            _queue.Writer.TryComplete();
        }

        public ValueTask DisposeAsync()
        {
            lock (harness._lock)
                harness._subscriptions.Remove(this);
            Stop();
            return ValueTask.CompletedTask;
        }
    }
}
