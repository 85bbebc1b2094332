using LaneQueue.Contracts;

namespace LaneQueue.Consumer;

/// <summary>How the scheduler treats work that is ready at the broker but not delivered to this process yet.</summary>
public enum GateMode
{
    /// <summary>
    /// A free slot is held for a higher lane with ready work at the broker only while this process could start it now (room
    /// under the lane's limit and the reserved slots, its tokens, not paused); a lane that cannot start passes its turn.
    /// </summary>
    WorkConserving,

    /// <summary>
    /// The rule before 1.0: every lower lane waits while a higher lane has ready work at the broker, even one this process
    /// cannot start (kept as a control for tests and benchmarks: it idles capacity under a mixed flood).
    /// </summary>
    Strict,
}

/// <summary>The rules the scheduler decides by, from the consumer's options.</summary>
/// <param name="SlotBudget">Tasks this process runs at once over all lanes.</param>
/// <param name="LaneLimits">Max concurrency per lane (by lane priority).</param>
/// <param name="Reserved">Slots of the budget only a lane and the lanes above it may use (by lane priority).</param>
/// <param name="Boost">Aging: how a lane's priority rises while its oldest task waits here.</param>
/// <param name="HoldForReady">Whether a slot may be held for a higher lane's ready work at the broker (the fleet gate is on).</param>
/// <param name="Mode">Which higher lanes a slot is held for (<see cref="GateMode"/>).</param>
/// <param name="PauseAtReady">Ready messages at the broker from which a lane counts as having work there.</param>
/// <param name="HoldTimeout">
/// How long the fleet monitor's last ready counts are trusted: a slot is held for ready work only while the counts are newer
/// than this (the monitor broadcasts every second and on every change between work and none).
/// </param>
/// <param name="SessionLimits">Per lane (by lane priority): tasks of one session that may run here at once (0: no limit).</param>
internal sealed record SchedulerRules(
    int SlotBudget,
    IReadOnlyList<int> LaneLimits,
    IReadOnlyList<int> Reserved,
    PriorityBoost Boost,
    bool HoldForReady,
    GateMode Mode,
    int PauseAtReady,
    TimeSpan HoldTimeout,
    IReadOnlyList<int>? SessionLimits = null)
{
    /// <summary>Tasks of one session that may run here at once in <paramref name="lane"/> (0: no limit).</summary>
    public int SessionLimit(SessionLane lane) => SessionLimits is { } limits && (int)lane < limits.Count ? limits[(int)lane] : 0;

    public static SchedulerRules From(LaneQueueOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var single = options.Topology == LaneTopology.PriorityQueue;
        return new SchedulerRules(
            options.SlotBudget,
            [.. SessionLanes.All.Select(lane => single ? options.SlotBudget : options.Queue.MaxConcurrency(lane))],
            [.. SessionLanes.All.Select(lane => options.ReservedSlots.GetValueOrDefault(lane))],
            options.Queue.PriorityBoost,
            options.Gate.Enabled && !single,
            options.Gate.Mode,
            options.Gate.PauseAtReady,
            TimeSpan.FromMilliseconds(options.Gate.HoldTimeoutMs),
            [.. SessionLanes.All.Select(lane => options.SessionLimits.GetValueOrDefault(lane))]);
    }
}

/// <summary>
/// The scheduling decision of one process, free of I/O and clocks (the caller passes the time): which waiting task a free
/// slot goes to, when a slot is held for a higher lane's work on its way from the broker, and which lane is kept waiting by
/// a full budget (so lower-lane preemptible work is asked to yield). The consumer (<see cref="LaneSlots"/>) and the test
/// harness only carry out its answers.
/// <para>
/// The rule (the original's scheduler, extended to the fleet): lanes are taken in order of effective priority (the lane's
/// priority, raised by aging while its oldest task waits here); the first lane that has a task it can start now gets the
/// slot. A lane that cannot start (paused, at its limit, short of a token, or only the reserved slots of higher lanes left)
/// passes its turn. A lane with no task here but ready work at the broker that this process could start now holds the slot
/// for it: the process's deliveries of that lane are all running or being finished (their results confirmed), and the
/// broker sends the next as soon as one is acked. So a lower lane never starts on a process that had room for a waiting
/// higher-lane task. The counts are trusted for <see cref="SchedulerRules.HoldTimeout"/> after the last broadcast (a monitor
/// that went quiet holds no slot for long).
/// </para>
/// </summary>
internal sealed class LaneScheduler
{
    /// <summary>
    /// A task waiting for a slot here (a delivery the process holds), and whatever its caller keeps with it.
    /// <paramref name="session"/>: its <c>session_id</c> (null: the default session); sessions take turns within a lane.
    /// <paramref name="delivery"/>: the queue it came from and the broker's delivery tag there (its place in that queue's
    /// order), when known: a session with a limit starts its tasks in that order.
    /// </summary>
    public sealed class Ticket(SessionLane lane, DateTimeOffset arrived, object? state = null, string? session = null, DeliveryPlace? delivery = null)
    {
        public SessionLane Lane { get; } = lane;
        public string Session { get; } = session ?? "";
        public DeliveryPlace? Delivery { get; } = delivery;
        public DateTimeOffset Arrived { get; } = arrived;
        public object? State { get; } = state;
        internal LinkedListNode<Ticket>? Node { get; set; }
    }

    /// <summary>A delivery's place: the queue it came from and the broker's delivery tag (increasing in delivery order on one channel).</summary>
    public readonly record struct DeliveryPlace(string Queue, ulong Tag);

    /// <summary>
    /// One decision: a ticket to start now, or none; then the lane a free slot is held for, the lane kept waiting by a full
    /// budget, and when to decide again even if nothing happens (a hold that runs out, aging).
    /// </summary>
    public readonly record struct Decision(Ticket? Start, SessionLane? HeldFor, SessionLane? Contended, DateTimeOffset? DecideAgainAt);

    readonly SchedulerRules _rules;
    readonly LinkedList<Ticket>[] _waiting;
    readonly int[] _running;
    readonly int[] _blocked;
    readonly int[] _arriving;
    readonly bool[] _paused;
    readonly long[] _ready;
    readonly DateTimeOffset?[] _lastStart;
    /// <summary>Per lane: each session's last start here (a running count), so the session that started least recently goes next.</summary>
    readonly Dictionary<string, long>[] _sessionTurns;
    /// <summary>Per lane: tasks of each session running here (kept for every lane; a session limit reads it).</summary>
    readonly Dictionary<string, int>[] _sessionRunning;
    /// <summary>Per queue of a lane with a session limit: the order its deliveries reach this process in (<see cref="QueueOrder"/>).</summary>
    readonly Dictionary<string, QueueOrder> _queues = new(StringComparer.Ordinal);
    long _starts;
    DateTimeOffset? _readyAt;
    /// <summary>Set while deciding: when a task held back by an earlier delivery not yet seen here stops waiting for it.</summary>
    DateTimeOffset? _gapGiveUpAt;

    /// <summary>
    /// How long a task of a session with a limit waits for an earlier delivery of its queue that the broker handed to this
    /// process but that has not begun being read here. RabbitMQ.Client hands one channel's deliveries to MassTransit's pipe
    /// on several threads at once, so a later delivery can reach <see cref="ArrivingAt"/> first (a landing run of
    /// SequentialSessionKillTests saw a session's first task start after its second); the earlier one comes within the
    /// moment a thread is held up. One that never comes (dropped before it is read) costs its queue's later tasks this wait once.
    /// </summary>
    public static readonly TimeSpan GapWait = TimeSpan.FromSeconds(2);

    /// <summary>
    /// One queue's deliveries as they reach this process: the tags still being read (<see cref="EarlierArriving"/>), and the tags
    /// that began being read, all up to <see cref="UpTo"/> and those above a gap. A channel numbers its deliveries 1, 2, 3,
    /// ...; a tag seen again means a new channel (the endpoint restarted), which starts the seen tags afresh.
    /// </summary>
    sealed class QueueOrder
    {
        readonly SortedSet<ulong> _arriving = [];
        readonly SortedSet<ulong> _above = [];

        /// <summary>Every tag up to this one began being read here.</summary>
        public ulong UpTo { get; private set; }

        /// <summary>Whether a delivery before <paramref name="tag"/> is still being read here.</summary>
        public bool EarlierArriving(ulong tag) => _arriving.Count > 0 && _arriving.Min < tag;

        /// <summary>Whether a delivery before <paramref name="tag"/> was handed to this process and has not begun being read.</summary>
        public bool EarlierUnseen(ulong tag) => UpTo + 1 < tag;

        public void Began(ulong tag)
        {
            _arriving.Add(tag);
            if (tag <= UpTo || _above.Contains(tag))
            {
                UpTo = 0;
                _above.Clear();
            }
            _above.Add(tag);
            Advance();
        }

        public void Ended(ulong tag) => _arriving.Remove(tag);

        /// <summary>Stops waiting for the tags below <paramref name="tag"/> that never came.</summary>
        public void SkipTo(ulong tag)
        {
            UpTo = Math.Max(UpTo, tag - 1);
            _above.RemoveWhere(t => t <= UpTo);
            Advance();
        }

        void Advance()
        {
            while (_above.Count > 0 && _above.Min == UpTo + 1)
                _above.Remove(++UpTo);
        }
    }

    public LaneScheduler(SchedulerRules rules)
    {
        _rules = rules ?? throw new ArgumentNullException(nameof(rules));
        var lanes = SessionLanes.All.Count;
        _waiting = [.. Enumerable.Range(0, lanes).Select(_ => new LinkedList<Ticket>())];
        _running = new int[lanes];
        _blocked = new int[lanes];
        _arriving = new int[lanes];
        _paused = new bool[lanes];
        _ready = new long[lanes];
        _lastStart = new DateTimeOffset?[lanes];
        _sessionTurns = [.. Enumerable.Range(0, lanes).Select(_ => new Dictionary<string, long>(StringComparer.Ordinal))];
        _sessionRunning = [.. Enumerable.Range(0, lanes).Select(_ => new Dictionary<string, int>(StringComparer.Ordinal))];
    }

    public SchedulerRules Rules => _rules;

    public int InUse => _running.Sum();

    public int Waiting(SessionLane lane) => _waiting[(int)lane].Count;

    public int WaitingTotal => _waiting.Sum(w => w.Count);

    public bool IsPaused(SessionLane lane) => _paused[(int)lane];

    public IEnumerable<Ticket> WaitingIn(SessionLane lane) => _waiting[(int)lane];

    /// <summary>A task waits for a slot, at the back of its lane.</summary>
    public void Add(Ticket ticket)
    {
        ArgumentNullException.ThrowIfNull(ticket);
        ticket.Node = _waiting[(int)ticket.Lane].AddLast(ticket);
    }

    /// <summary>A waiting task went away (cancelled, put back in its lane); false when it was not waiting.</summary>
    public bool Remove(Ticket ticket)
    {
        ArgumentNullException.ThrowIfNull(ticket);
        if (ticket.Node?.List is not { } list)
            return false;
        list.Remove(ticket.Node);
        ticket.Node = null;
        return true;
    }

    /// <summary>A running task of the lane (of <paramref name="session"/>, as its ticket said) gave its slot back and ended.</summary>
    public void Finished(SessionLane lane, string? session = null)
    {
        FinishedSlot(lane);
        SessionEnded(lane, session);
    }

    /// <summary>A running task of the lane gave its slot back; its session still counts it until <see cref="SessionEnded"/>.</summary>
    public void FinishedSlot(SessionLane lane)
    {
        if (_running[(int)lane] <= 0)
            throw new InvalidOperationException($"lane {lane.WireName()} has no running task to finish");
        _running[(int)lane]--;
    }

    /// <summary>A task of <paramref name="session"/> that started in the lane no longer counts against the session's limit.</summary>
    public void SessionEnded(SessionLane lane, string? session)
    {
        var running = _sessionRunning[(int)lane];
        var key = session ?? "";
        if (running.TryGetValue(key, out var count))
        {
            if (count <= 1)
                running.Remove(key);
            else
                running[key] = count - 1;
        }
    }

    /// <summary>
    /// The sessions of <paramref name="lane"/> here: tasks running and waiting for a slot per session (<c>""</c>: tasks without
    /// a session), busiest first, at most <paramref name="top"/>.
    /// </summary>
    public IReadOnlyList<(string Session, int Running, int Waiting)> SessionsIn(SessionLane lane, int top)
    {
        var waiting = _waiting[(int)lane].GroupBy(t => t.Session, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
        return
        [
            .. waiting.Keys.Union(_sessionRunning[(int)lane].Keys, StringComparer.Ordinal)
                .Select(session => (session, _sessionRunning[(int)lane].GetValueOrDefault(session), waiting.GetValueOrDefault(session)))
                .OrderByDescending(x => x.Item2 + x.Item3).ThenBy(x => x.session, StringComparer.Ordinal)
                .Take(top),
        ];
    }

    /// <summary>Tasks of <paramref name="session"/> running here in <paramref name="lane"/>.</summary>
    public int RunningOf(SessionLane lane, string? session) => _sessionRunning[(int)lane].GetValueOrDefault(session ?? "");

    /// <summary>Tasks of the lane this process holds that wait for a rate-limit or fleet token (the lane cannot start one now).</summary>
    public void Blocked(SessionLane lane, int delta) => _blocked[(int)lane] = Math.Max(0, _blocked[(int)lane] + delta);

    /// <summary>
    /// Deliveries of the lane this process received and is still reading (parse, duplicate and cancel checks) before they
    /// wait here: work of its own as sure as a ready count, and nearer. A free slot is held for them as for ready work.
    /// </summary>
    public void Arriving(SessionLane lane, int delta) => _arriving[(int)lane] = Math.Max(0, _arriving[(int)lane] + delta);

    /// <summary>A delivery at <paramref name="place"/> began (or ended) being read here, before its task waits (or goes).</summary>
    public void ArrivingAt(DeliveryPlace place, bool arriving)
    {
        if (arriving)
        {
            if (!_queues.TryGetValue(place.Queue, out var order))
                _queues[place.Queue] = order = new QueueOrder();
            order.Began(place.Tag);
        }
        else if (_queues.TryGetValue(place.Queue, out var order))
        {
            order.Ended(place.Tag);
        }
    }

    /// <summary>An operator paused (or resumed) the lane: it passes its turn while paused.</summary>
    public void SetPaused(SessionLane lane, bool paused) => _paused[(int)lane] = paused;

    /// <summary>Ready messages per lane at the broker, as the fleet monitor read them; <paramref name="at"/>: when they arrived.</summary>
    public void SetReady(IReadOnlyList<long> ready, DateTimeOffset at)
    {
        ArgumentNullException.ThrowIfNull(ready);
        for (var i = 0; i < _ready.Length && i < ready.Count; i++)
            _ready[i] = ready[i];
        _readyAt = at;
    }

    /// <summary>
    /// Aging: the boost levels a lane has earned while tasks of it wait here, counted from its oldest waiting task's arrival
    /// or its last start here, whichever is later (0 when nothing of it waits).
    /// </summary>
    public int BoostLevels(SessionLane lane, DateTimeOffset now)
    {
        var i = (int)lane;
        if (_waiting[i].First is not { } oldest)
            return 0;
        var since = _lastStart[i] is { } started && started > oldest.Value.Arrived ? started : oldest.Value.Arrived;
        return _rules.Boost.LevelsFor(now - since);
    }

    /// <summary>Lanes in the order a free slot is offered: effective priority (aging included), then lane priority.</summary>
    public IReadOnlyList<SessionLane> Order(DateTimeOffset now) =>
    [
        .. SessionLanes.All.OrderBy(lane => BoostLevels(lane, now) is var levels && levels == PriorityBoost.TopPriority
                ? int.MinValue
                : lane.Priority() - levels)
            .ThenBy(lane => lane.Priority()),
    ];

    /// <summary>
    /// Whether one more task of the lane fits the budget: every slot reserved for a higher lane and not used by one stays free.
    /// Tasks of a lane may use the reserved slots of their own lane and of every lane below it, and the unreserved ones.
    /// </summary>
    public bool FitsBudget(SessionLane lane)
    {
        var reservedAbove = 0;
        var runningFromHere = _running.Sum();
        for (var t = 0; t <= (int)lane; t++)
        {
            if (runningFromHere + 1 > _rules.SlotBudget - reservedAbove)
                return false;
            reservedAbove += _rules.Reserved[t];
            runningFromHere -= _running[t];
        }
        return true;
    }

    /// <summary>
    /// The lane's next task: the first waiting one of the session that started here least recently (a session that never did
    /// first), so the sessions a process holds tasks of take turns; tasks of one session keep their order. A session at its
    /// limit here (<see cref="SchedulerRules.SessionLimits"/>) is skipped; null when every waiting task's session is.
    /// </summary>
    Ticket? NextTurn(int lane, DateTimeOffset now)
    {
        var turns = _sessionTurns[lane];
        var limit = _rules.SessionLimit((SessionLane)lane);
        Ticket? best = null;
        var bestTurn = long.MaxValue;
        for (var node = _waiting[lane].First; node is not null; node = node.Next)
        {
            if (limit > 0 && (_sessionRunning[lane].GetValueOrDefault(node.Value.Session) >= limit || !InDeliveryOrder(lane, node.Value, now)))
                continue; // its session runs all it may, or an earlier task of it (or of its queue) is still on its way here
            var turn = turns.GetValueOrDefault(node.Value.Session);
            if (turn < bestTurn)
                (best, bestTurn) = (node.Value, turn);
            if (turn == 0)
                break; // nothing goes before a session's first turn, and the earliest such task is this one
        }
        return best;
    }

    /// <summary>
    /// Whether the ticket may start in delivery order: no earlier delivery of its queue waits here for its session, is still
    /// being read, or was handed to this process and not yet read (for up to <see cref="GapWait"/>). The tasks a process holds
    /// of one session start in the order the broker delivered them, though they reach the scheduler in any order.
    /// Side effects: while a delivery not yet read holds the ticket back, it records when that wait ends (<c>_gapGiveUpAt</c>,
    /// so the decision says when to look again); once it has ended, the queue gives that gap up for good (<see cref="QueueOrder.SkipTo"/>).
    /// </summary>
    bool InDeliveryOrder(int lane, Ticket ticket, DateTimeOffset now)
    {
        if (ticket.Delivery is not { } place)
            return true;
        if (_queues.TryGetValue(place.Queue, out var order))
        {
            if (order.EarlierArriving(place.Tag))
                return false;
            if (order.EarlierUnseen(place.Tag))
            {
                var giveUpAt = ticket.Arrived + GapWait;
                if (now < giveUpAt)
                {
                    _gapGiveUpAt = _gapGiveUpAt is { } due && due < giveUpAt ? due : giveUpAt;
                    return false;
                }
                order.SkipTo(place.Tag);
            }
        }
        foreach (var other in _waiting[lane])
        {
            if (other.Session == ticket.Session && other.Delivery is { } earlier && earlier.Queue == place.Queue && earlier.Tag < place.Tag)
                return false;
        }
        return true;
    }

    /// <summary>Records <paramref name="next"/>'s start: its session's turn and its running count.</summary>
    void TakeTurn(int lane, Ticket next)
    {
        var turns = _sessionTurns[lane];
        turns[next.Session] = ++_starts;
        _sessionRunning[lane][next.Session] = _sessionRunning[lane].GetValueOrDefault(next.Session) + 1;
        if (turns.Count > 64 + 4 * _waiting[lane].Count)
        {
            // Forget sessions with nothing waiting here (they start afresh, which is their due: they waited for nothing).
            var waiting = _waiting[lane].Select(t => t.Session).ToHashSet(StringComparer.Ordinal);
            foreach (var gone in turns.Keys.Where(k => !waiting.Contains(k)).ToList())
                turns.Remove(gone);
        }
    }

    /// <summary>
    /// Decides what a free slot does now. <paramref name="hasToken"/> says whether a waiting task of a lane may take a start
    /// token now (the test harness asks its rate limits; the consumer takes tokens before a task waits here, so it passes null).
    /// A returned <see cref="Decision.Start"/> is counted as running at once; call again until it returns none.
    /// </summary>
    public Decision Decide(DateTimeOffset now, Func<SessionLane, bool>? hasToken = null)
    {
        _gapGiveUpAt = null;
        var decision = DecideNow(now, hasToken);
        // A task held back for an earlier delivery not yet seen here is decided again when it stops waiting for it.
        return _gapGiveUpAt is { } gap && decision.Start is null && (decision.DecideAgainAt is not { } due || gap < due)
            ? decision with { DecideAgainAt = gap }
            : decision;
    }

    Decision DecideNow(DateTimeOffset now, Func<SessionLane, bool>? hasToken)
    {
        foreach (var lane in Order(now))
        {
            var i = (int)lane;
            if (_paused[i])
                continue;
            var laneRoom = _running[i] < _rules.LaneLimits[i];
            if (_waiting[i].First is not null && laneRoom && hasToken?.Invoke(lane) != false && NextTurn(i, now) is { } next)
            {
                if (!FitsBudget(lane))
                    return new Decision(null, null, lane, null); // nothing below it fits either
                TakeTurn(i, next);
                _waiting[i].Remove(next.Node!);
                next.Node = null;
                _running[i]++;
                _lastStart[i] = now;
                return new Decision(next, null, null, null);
            }
            // No task of this lane can start here now (or none waits): what of its work on the way here, or ready at the broker?
            if (!_rules.HoldForReady)
                continue;
            var readyAt = _readyAt;
            var readyThere = _ready[i] >= _rules.PauseAtReady && readyAt is not null && now - readyAt < _rules.HoldTimeout;
            if (!readyThere && _arriving[i] == 0)
                continue;
            DateTimeOffset? trustedUntil = readyThere ? readyAt + _rules.HoldTimeout : null; // an arrival decides again when it waits or goes
            if (_rules.Mode == GateMode.Strict && readyThere)
                return new Decision(null, lane, null, trustedUntil); // the rule before 1.0: hold for it regardless
            if (_waiting[i].Count > 0 || !laneRoom || _blocked[i] > 0 || !FitsBudget(lane))
                continue; // this process could not start it now: passes its turn
            return new Decision(null, lane, null, trustedUntil);
        }
        return new Decision(null, null, null, null);
    }
}
