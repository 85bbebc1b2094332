using LaneQueue.Contracts;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace LaneQueue.Consumer;

/// <summary>
/// The slots of one consumer process, handed out by <see cref="LaneScheduler"/>: a delivered task waits here for a slot; the
/// scheduler decides whose turn it is whenever something changes (a task arrives or ends, the fleet monitor's ready counts
/// arrive, an operator pauses a lane, a hold runs out). When the highest waiting lane finds the budget full, lower-lane
/// preemptible work is asked to yield (<see cref="RunningTasks.RequestYieldBelow"/>).
/// </summary>
internal sealed class LaneSlots : IDisposable
{
    readonly object _lock = new();
    readonly LaneScheduler _scheduler;
    readonly TimeProvider _time;
    readonly RunningTasks _running;
    readonly ILogger<LaneSlots> _logger;
    readonly ITimer _timer;
    DateTimeOffset? _timerDue;

    public LaneSlots(IOptions<LaneQueueOptions> options, RunningTasks running, ILogger<LaneSlots> logger, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _scheduler = new LaneScheduler(SchedulerRules.From(options.Value));
        _running = running;
        _logger = logger;
        _time = time ?? TimeProvider.System;
        _timer = _time.CreateTimer(_ => Pump(), null, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    /// <summary>Thrown to a waiting task whose lane an operator paused: it goes back to its lane untouched.</summary>
    public sealed class LanePausedException() : OperationCanceledException("lane paused by operator");

    public int Capacity => _scheduler.Rules.SlotBudget;

    public int InUse
    {
        get
        {
            lock (_lock)
                return _scheduler.InUse;
        }
    }

    public int Waiting
    {
        get
        {
            lock (_lock)
                return _scheduler.WaitingTotal;
        }
    }

    /// <summary>The busiest sessions of a lane here: tasks running and waiting per session (<see cref="LaneScheduler.SessionsIn"/>).</summary>
    public IReadOnlyList<(string Session, int Running, int Waiting)> SessionsIn(SessionLane lane, int top)
    {
        lock (_lock)
            return _scheduler.SessionsIn(lane, top);
    }

    /// <summary>Tasks of a lane waiting here for a slot.</summary>
    public int WaitingIn(SessionLane lane)
    {
        lock (_lock)
            return _scheduler.Waiting(lane);
    }

    /// <summary>
    /// Waits for a slot; dispose the returned handle to give it back. <paramref name="arrival"/> (from <see cref="Arriving"/>)
    /// ends as the task starts to wait, so the scheduler never sees it neither arriving nor waiting.
    /// </summary>
    public async Task<Slot> AcquireAsync(SessionLane lane, CancellationToken cancellationToken = default, IDisposable? arrival = null, string? session = null)
    {
        var waiter = new TaskCompletionSource<Slot>(TaskCreationOptions.RunContinuationsAsynchronously);
        var ticket = new LaneScheduler.Ticket(lane, _time.GetUtcNow(), waiter, session, (arrival as Arrival)?.Place);
        lock (_lock)
        {
            (arrival as Arrival)?.EndLocked();
            if (_scheduler.IsPaused(lane))
                throw new LanePausedException();
            _scheduler.Add(ticket);
        }
        Pump();
        await using var registration = cancellationToken.Register(() =>
        {
            bool removed;
            lock (_lock)
                removed = _scheduler.Remove(ticket);
            if (removed)
                waiter.TrySetCanceled(cancellationToken);
        });
        return await waiter.Task.ConfigureAwait(false);
    }

    /// <summary>While disposed-not-yet, a task of the lane waits for a rate-limit or fleet token: the lane cannot start one now.</summary>
    public IDisposable Blocking(SessionLane lane)
    {
        lock (_lock)
            _scheduler.Blocked(lane, +1);
        return new Unblock(this, lane);
    }

    /// <summary>
    /// Until disposed (or until its task waits in <see cref="AcquireAsync"/>), a delivery of the lane is being read here: a
    /// free slot is held for it as for the lane's ready work at the broker, so a lower lane does not take the slot in the
    /// moment between one task of the lane ending and the next one delivered reaching its turn.
    /// </summary>
    public IDisposable Arriving(SessionLane lane, LaneScheduler.DeliveryPlace? place = null)
    {
        // A delivery's place only matters to a lane with a session limit (its sessions start in delivery order).
        if (_scheduler.Rules.SessionLimit(lane) == 0)
            place = null;
        lock (_lock)
        {
            _scheduler.Arriving(lane, +1);
            if (place is { } at)
                _scheduler.ArrivingAt(at, true);
        }
        return new Arrival(this, lane, place);
    }

    /// <summary>The fleet monitor's ready counts per lane (by lane priority).</summary>
    public void SetReady(IReadOnlyList<long> ready)
    {
        lock (_lock)
            _scheduler.SetReady(ready, _time.GetUtcNow());
        Pump();
    }

    /// <summary>An operator's pause: the lane passes its turn, and its waiting tasks are handed back (<see cref="LanePausedException"/>).</summary>
    public void SetPaused(SessionLane lane, bool paused)
    {
        List<LaneScheduler.Ticket> handBack = [];
        lock (_lock)
        {
            _scheduler.SetPaused(lane, paused);
            if (paused)
            {
                handBack.AddRange(_scheduler.WaitingIn(lane));
                foreach (var ticket in handBack)
                    _scheduler.Remove(ticket);
            }
        }
        foreach (var ticket in handBack)
            ((TaskCompletionSource<Slot>)ticket.State!).TrySetException(new LanePausedException());
        Pump();
    }

    void Release(LaneScheduler.Ticket ticket, bool slot, bool session)
    {
        lock (_lock)
        {
            if (slot)
                _scheduler.FinishedSlot(ticket.Lane);
            if (session)
                _scheduler.SessionEnded(ticket.Lane, ticket.Session);
        }
        Pump();
    }

    /// <summary>Starts every waiting task the scheduler lets start now, and arranges to decide again when it asks to.</summary>
    void Pump()
    {
        List<LaneScheduler.Ticket> start = [];
        SessionLane? contended;
        lock (_lock)
        {
            LaneScheduler.Decision decision;
            while (true)
            {
                decision = _scheduler.Decide(_time.GetUtcNow());
                if (decision.Start is not { } ticket)
                    break;
                start.Add(ticket);
            }
            contended = decision.Contended;
            if (decision.DecideAgainAt is { } due && (_timerDue is null || due < _timerDue || _timerDue <= _time.GetUtcNow()))
            {
                _timerDue = due;
                _timer.Change(Max(due - _time.GetUtcNow(), TimeSpan.FromMilliseconds(1)), Timeout.InfiniteTimeSpan);
            }
        }
        foreach (var ticket in start)
        {
            if (!((TaskCompletionSource<Slot>)ticket.State!).TrySetResult(new Slot(this, ticket)))
                Release(ticket, slot: true, session: true); // its waiter gave up in the meantime
        }
        if (contended is { } lane && _running.RequestYieldBelow(lane) is { } victim)
            Log.YieldRequested(_logger, victim.Id, victim.Lane.WireName(), lane.WireName());
    }

    static TimeSpan Max(TimeSpan a, TimeSpan b) => a > b ? a : b;

    public void Dispose() => _timer.Dispose();

    /// <summary>
    /// A slot given to a task: disposing it gives the slot back. Its session's count (<see cref="LaneQueueOptions.SessionLimits"/>)
    /// goes with it, unless <see cref="KeepSession"/> holds that until the task's result is confirmed.
    /// </summary>
    public sealed class Slot : IDisposable
    {
        readonly LaneSlots _slots;
        readonly LaneScheduler.Ticket _ticket;
        int _released;
        int _sessionKept;
        int _sessionEnded;

        internal Slot(LaneSlots slots, LaneScheduler.Ticket ticket) => (_slots, _ticket) = (slots, ticket);

        /// <summary>
        /// Keeps the task counted against its session's limit after its slot is given back, until the returned handle is
        /// disposed: the session's next task then starts only once this one has ended for good (result confirmed), so a
        /// crash in between cannot run them out of order.
        /// </summary>
        public IDisposable KeepSession()
        {
            Interlocked.Exchange(ref _sessionKept, 1);
            return new SessionTurn(this);
        }

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) != 0)
                return;
            var endSession = Volatile.Read(ref _sessionKept) == 0 && Interlocked.Exchange(ref _sessionEnded, 1) == 0;
            _slots.Release(_ticket, slot: true, session: endSession);
        }

        void EndSession()
        {
            if (Interlocked.Exchange(ref _sessionEnded, 1) == 0)
                _slots.Release(_ticket, slot: false, session: true);
        }

        sealed class SessionTurn(Slot slot) : IDisposable
        {
            public void Dispose() => slot.EndSession();
        }
    }

    sealed class Arrival(LaneSlots slots, SessionLane lane, LaneScheduler.DeliveryPlace? place) : IDisposable
    {
        int _ended;

        public LaneScheduler.DeliveryPlace? Place => place;

        /// <summary>Ends the arrival under the slots' lock (the task now waits there); false when it had ended.</summary>
        public bool EndLocked()
        {
            if (Interlocked.Exchange(ref _ended, 1) != 0)
                return false;
            slots._scheduler.Arriving(lane, -1);
            if (place is { } at)
                slots._scheduler.ArrivingAt(at, false);
            return true;
        }

        public void Dispose()
        {
            bool ended;
            lock (slots._lock)
                ended = EndLocked();
            if (ended)
                slots.Pump();
        }
    }

    sealed class Unblock(LaneSlots slots, SessionLane lane) : IDisposable
    {
        int _done;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _done, 1) != 0)
                return;
            lock (slots._lock)
                slots._scheduler.Blocked(lane, -1);
            slots.Pump();
        }
    }
}
