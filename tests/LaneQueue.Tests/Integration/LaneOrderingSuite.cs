using LaneQueue.Consumer;
using LaneQueue.Contracts;
using LaneQueue.Producer;
using LaneQueue.Tests.Broker;
using Xunit.Abstractions;

namespace LaneQueue.Tests.Integration;

/// <summary>
/// Priority between lanes across a fleet of two consumers (two buses in this process), asserted on the recorded start
/// sequence. Every slot of every consumer is busy on the lower lane when the higher-lane work arrives.
/// <para>
/// The rule (<see cref="LaneScheduler"/>): a free slot goes to the highest lane that can start a task now. An overtake is
/// therefore a lower-lane start on a consumer that had room for a waiting higher-lane task: fewer higher-lane tasks running
/// there than the lane's limit, while tasks of the burst waited (from the broker's confirm of the whole burst to the start of
/// its last task). A lower-lane start beside a higher lane at its own limit is the rule at work, not an overtake: the burst
/// tests also assert that the consumers' slots stay busy while the burst waits. Two control runs must fail what the gate
/// holds: the gate off (<see cref="QueuePerLaneGateOffControlTests"/>: overtakes) and the rule before 1.0
/// (<see cref="QueuePerLaneStrictControlTests"/>: lower lanes held behind a higher lane at its limit, slots idle).
/// </para>
/// </summary>
public abstract class LaneOrderingSuite(BrokerFixture broker, ITestOutputHelper output) : FleetTest(broker)
{
    /// <summary>Lower-lane backlog: long enough to still be waiting when the burst has all started.</summary>
    const int BacklogSize = 1000;
    const int BacklogMs = 50;
    /// <summary>Higher-lane burst: well over what the fleet holds of that lane. Each task runs 200 ms.</summary>
    const int BurstSize = 100;
    const int BurstMs = 200;
    /// <summary>
    /// A flood of short higher-lane tasks: each ends before the broker has refilled its lane's deliveries (the result's
    /// confirm and the ack come first), so the consumer often holds none of them when a slot frees. Only the gate's hold for
    /// the lane's ready work at the broker keeps the lower lane out of that slot.
    /// </summary>
    const int FloodSize = 1500;
    const int FloodMs = 1;
    /// <summary>Share of slot time the handlers must fill while a burst waits (the strict rule leaves half of it idle).</summary>
    const double MinUtilization = 0.8;

    /// <summary>False in the control run: the lane gate is switched off (<c>Gate:Enabled=false</c>).</summary>
    protected virtual bool GateEnabled => true;

    protected virtual GateMode Mode => GateMode.WorkConserving;

    /// <summary>Which control this is, if any: the name its evidence files carry.</summary>
    protected virtual string Run => "gate-on";

    /// <summary>
    /// The lane endpoints' window (<see cref="LaneQueueOptions.PrefetchPerLimit"/>): the default (4) here; 2 in the control
    /// runs and in one gate-on run beside them. At 2 a flood of short tasks runs the lane's deliveries dry between the
    /// broker's refills, so the gate's hold is what keeps the lower lane out and the gate-off control shows it (at 4 the flood
    /// rarely runs dry: the gate-off control measured 0, 0 and 3 overtakes, and the lane order of what a consumer holds does
    /// the work).
    /// </summary>
    protected virtual int PrefetchPerLimit => new LaneQueueOptions().PrefetchPerLimit;

    static readonly SessionQueueConfig Lanes = new() { GenerateMaxConcurrency = SlotBudget, QueryMaxConcurrency = SlotBudget };

    protected override void Configure(LaneQueueOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Gate.Enabled = GateEnabled;
        options.Gate.Mode = Mode;
        options.PrefetchPerLimit = PrefetchPerLimit;
        options.Queue = options.Queue with { GenerateMaxConcurrency = Lanes.GenerateMaxConcurrency, QueryMaxConcurrency = Lanes.QueryMaxConcurrency };
    }

    int Limit(SessionLane lane) => Topology == LaneTopology.QueuePerLane ? Lanes.MaxConcurrency(lane) : SlotBudget;

    /// <summary>
    /// Lower-lane deliveries the fleet holds under prefetch in the single-queue topology (the consumer's prefetch = the slot
    /// budget, since the broker orders by priority only what it has not delivered yet). A single higher-lane task may be
    /// overtaken by at most these.
    /// </summary>
    protected int Prefetched(SessionLane lowerLane) =>
        Consumers * (Topology == LaneTopology.QueuePerLane ? Lanes.MaxConcurrency(lowerLane) : SlotBudget);

    /// <summary>
    /// Overtakes allowed per burst: two per consumer with queue per lane (starts decided just before the burst's deliveries
    /// or the monitor's count reached the consumer; the target is one per consumer, which the bursts meet: 0 to 2 in all, and
    /// a bound at the target's edge would make the suite flaky on a loaded machine); in the single-queue topology what the
    /// fleet holds under prefetch, twice. The flood of 1 ms queries has the same bound: it measured 0 in four runs alone once
    /// a lane without rate or fleet limits stopped counting as "waiting for a token" while its task was admitted (before
    /// that: 5 to 36 alone, against a bound of two per slot, 16), against 74 to 325 with the gate off.
    /// </summary>
    protected int Bound(SessionLane lowerLane) =>
        Topology == LaneTopology.QueuePerLane ? 2 * Consumers : 2 * Prefetched(lowerLane);

    sealed record Outcome(int Overtakes, int BacklogStarted, TimeSpan BurstSpan, double Utilization, int BurstMs, string Describe);

    /// <summary>
    /// Fills every slot with <paramref name="lower"/> work, then submits a burst of <paramref name="higher"/> tasks and
    /// counts the overtakes while the burst waited, and the share of slot time the handlers filled meanwhile.
    /// </summary>
    async Task<Outcome> BurstBehindBacklogAsync(SessionLane lower, SessionLane higher, int burstSize = BurstSize, int burstMs = BurstMs)
    {
        await SubmitAsync(Backlog("backlog", lower, BacklogSize, BacklogMs));
        await WaitForStartsAsync(lower, 4 * Consumers * SlotBudget);
        return await BurstAsync("urgent", lower, higher, burstSize, burstMs);
    }

    /// <summary>Submits a burst of <paramref name="higher"/> tasks (ids <paramref name="prefix"/>-N) and measures it.</summary>
    async Task<Outcome> BurstAsync(string prefix, SessionLane lower, SessionLane higher, int burstSize, int burstMs)
    {
        var before = Log.StartedIn(higher);
        await SubmitAsync(Backlog(prefix, higher, burstSize, burstMs));
        var confirmed = DateTimeOffset.UtcNow;
        await WaitForStartsAsync(higher, before + burstSize);
        var burst = Log.Starts.Where(s => s.Id.StartsWith(prefix + "-", StringComparison.Ordinal)).ToList();
        // Starts in the order the consumers gave out the slots (the handlers may begin a moment later).
        var last = burst.MaxBy(s => s.At)!;
        // On each consumer, from its first start of the burst (before it, the consumer had been given none of it and its gate
        // had not heard of it yet: a start decided then is no overtake) to its last (after it, what was left of the burst was
        // held by the other consumer, out of this one's reach: a start then keeps a slot busy that no burst task could have).
        var higherHere = Names.ToDictionary(name => name, name => burst.Where(s => s.Consumer == name).Select(s => s.At).ToList());
        var inWindow = Log.Starts.Where(s => s.Lane == lower && s.At > confirmed && higherHere[s.Consumer].Count > 0
                                             && s.At > higherHere[s.Consumer].Min() && s.At < higherHere[s.Consumer].Max()).ToList();
        var overtaking = inWindow.Where(s => Log.RunningAt(s.Consumer, higher, s.At) < Limit(higher)).ToList();
        var overtakes = overtaking.Count;
        // Where each overtake fell: its consumer, ms after the confirm, ms before that consumer's last burst start, and how
        // many of the burst ran there then.
        var where = string.Join(", ", overtaking.Select(s =>
            $"{s.Consumer} +{(s.At - confirmed).TotalMilliseconds:0}/-{(higherHere[s.Consumer].Max() - s.At).TotalMilliseconds:0} ms running {Log.RunningAt(s.Consumer, higher, s.At)}"));
        var utilization = Names.Average(name => Log.Utilization(name, confirmed, last.At, SlotBudget));
        var describe = $"{overtakes} {lower.WireName()} tasks started on a consumer with room for a waiting {higher.WireName()} task " +
                       $"({inWindow.Count} {lower.WireName()} starts in all) while {burstSize} {higher.WireName()} tasks ({burstMs} ms each) waited " +
                       $"(from the broker's confirm of the whole burst to the start of its last task, {(last.At - confirmed).TotalMilliseconds:0} ms); " +
                       $"bound {Bound(lower)}; slots busy {utilization:P0} meanwhile; {Run}, {Topology}" + (overtakes is > 0 and <= 20 ? $" [{where}]" : "");
        return new Outcome(overtakes, Log.StartedIn(lower), last.At - confirmed, utilization, burstMs, describe);
    }

    void AssertBound(Outcome outcome, SessionLane lower, string test)
    {
        output.WriteLine(outcome.Describe);
        Evidence.Write($"ordering-{Run}-{Topology}-{test}", new
        {
            Topology = Topology.ToString(),
            Gate = GateEnabled,
            Mode = Mode.ToString(),
            Consumers,
            SlotBudget,
            PrefetchPerLimit,
            BacklogLane = lower.WireName(),
            BacklogTasks = BacklogSize,
            BacklogTaskMs = BacklogMs,
            BurstTaskMs = outcome.BurstMs,
            outcome.Overtakes,
            Bound = Bound(lower),
            Utilization = Math.Round(outcome.Utilization, 3),
            BurstSpanMs = Math.Round(outcome.BurstSpan.TotalMilliseconds),
            Asserted = Run switch
            {
                "gate-off" => outcome.BurstMs == FloodMs ? $"overtakes > {Bound(lower)}" : "none (recorded)",
                "strict" => $"utilization < {MinUtilization} (behind control)",
                _ => outcome.BurstMs == FloodMs ? $"overtakes <= {Bound(lower)}" : $"overtakes <= {Bound(lower)}, utilization >= {MinUtilization}",
            },
        }, outcome.Describe);
        Assert.True(outcome.BacklogStarted < BacklogSize, $"the {lower.WireName()} backlog must still be waiting when the burst has started: {outcome.Describe}");
        Assert.True(outcome.BurstSpan > TimeSpan.FromMilliseconds(Math.Max(outcome.BurstMs * 2, 300)), $"the burst drained too fast to tell: {outcome.Describe}");
        switch (Run)
        {
            case "gate-off" when outcome.BurstMs == FloodMs:
                // The control run: the same flood without the gate must break the bound, or the suite cannot tell the gate is there.
                Assert.True(outcome.Overtakes > Bound(lower), "the gate-off control run must exceed the bound the gate holds: " + outcome.Describe);
                break;
            case "gate-off":
                // With 200 ms tasks the deliveries a consumer holds of the burst (twice its lane limit) keep the order by
                // themselves: recorded, not asserted. The flood of short tasks is where the gate's hold is needed.
                break;
            case "strict":
                Assert.True(outcome.Overtakes <= Bound(lower), outcome.Describe);
                break;
            default:
                Assert.True(outcome.Overtakes <= Bound(lower), outcome.Describe);
                // (A flood of 1 ms tasks is mostly the consumer's own work per task: handler time says nothing there.)
                if (outcome.BurstMs != FloodMs)
                    Assert.True(outcome.Utilization >= MinUtilization, $"slots idle while the burst waited: {outcome.Describe}");
                break;
        }
    }

    [Fact]
    public async Task A_query_burst_starts_before_the_waiting_generate_backlog_then_generate_resumes_and_every_task_completes_once()
    {
        var outcome = await BurstBehindBacklogAsync(SessionLane.Generate, SessionLane.Query);
        AssertBound(outcome, SessionLane.Generate, "query-burst-behind-generate");

        // Resuming: once the query lane drains, generate resumes on every consumer and every task completes exactly once.
        await TestVhost.EventuallyAsync(() => Task.FromResult(Log.Finished.Count >= BacklogSize + BurstSize), "every task finished", timeoutSeconds: 180);
        Assert.Equal(BacklogSize + BurstSize, Log.Starts.Select(s => s.Id).Distinct().Count());
        Assert.Equal(BacklogSize + BurstSize, Log.Starts.Count);
        Assert.Equal(BacklogSize + BurstSize, Log.Finished.Count);
        var lastUrgent = Log.Starts.Where(s => s.Lane == SessionLane.Query).Max(s => s.Sequence);
        Assert.All(Names, name => Assert.Contains(Log.Starts, s => s.Lane == SessionLane.Generate && s.Consumer == name && s.Sequence > lastUrgent));
    }

    [Fact]
    public async Task A_flood_of_short_queries_keeps_the_generate_backlog_out_of_every_slot_a_query_could_take()
    {
        var outcome = await BurstBehindBacklogAsync(SessionLane.Generate, SessionLane.Query, FloodSize, FloodMs);
        if (Run == "gate-off" && outcome.Overtakes <= Bound(SessionLane.Generate))
        {
            // The control shows what the gate's hold prevents only when this process runs out of query deliveries while a slot
            // frees: on a loaded machine the broker can refill faster than the consumers run 1 ms tasks, and then the lane
            // order of the deliveries held keeps generate out by itself (13 once in a landing run, when the bound was 16; 66 to 193
            // alone). One more flood behind the same backlog; the control asserts on it.
            output.WriteLine("first control flood inconclusive: " + outcome.Describe);
            outcome = await BurstAsync("urgent2", SessionLane.Generate, SessionLane.Query, FloodSize, FloodMs);
        }
        AssertBound(outcome, SessionLane.Generate, "short-query-flood-behind-generate");
    }

    [Fact]
    public async Task A_control_burst_starts_before_the_waiting_query_backlog_and_query_keeps_the_slots_control_cannot_use()
    {
        var outcome = await BurstBehindBacklogAsync(SessionLane.Query, SessionLane.Control);
        AssertBound(outcome, SessionLane.Query, "control-burst-behind-query");
        if (Run == "strict")
        {
            // The rule before 1.0 holds query behind control's ready work although control is at its limit of 2 of the 4
            // slots: half the fleet idles while the burst waits. The work-conserving rule is held to MinUtilization.
            Assert.True(outcome.Utilization < MinUtilization, "the strict control run must leave slots idle: " + outcome.Describe);
        }
    }

    /// <summary>
    /// One query behind the backlog: the next free slot of the consumer it was delivered to goes to it (the scheduler orders
    /// the deliveries a consumer holds), so it holds with the gate off too; the control runs assert the same bound.
    /// </summary>
    [Fact]
    public async Task A_single_query_starts_before_the_generate_tasks_already_waiting_with_or_without_the_gate()
    {
        await SubmitAsync(Backlog("backlog", SessionLane.Generate, BacklogSize, BacklogMs));
        await WaitForStartsAsync(SessionLane.Generate, 4 * Consumers * SlotBudget);
        var submittedAt = DateTimeOffset.UtcNow;
        await Producer.SubmitTaskAsync(StartLog.Make("urgent", SessionLane.Query, 0));
        var urgent = await StartOfAsync("urgent");
        // Generate starts on the consumer the query was delivered to, after the submit and before the query's start. With queue
        // per lane the query goes ahead of every generate task waiting there once it has arrived; the starts counted are the
        // ones decided while it was still being published and delivered (a slot frees about every 12 ms here), at most one
        // per slot. In the single queue it may wait behind what that consumer holds under prefetch (the slot budget) too.
        // Starts on the other consumer are no overtakes: it was never given the query.
        var bound = SlotBudget;
        var overtakes = Log.Starts.Count(s => s.Lane == SessionLane.Generate && s.Consumer == urgent.Consumer && s.At >= submittedAt && s.At < urgent.At);
        var elsewhere = Log.Starts.Count(s => s.Lane == SessionLane.Generate && s.Consumer != urgent.Consumer && s.At >= submittedAt && s.At < urgent.At);
        var describe = $"{overtakes} generate tasks started on {urgent.Consumer} between the query's submit and its start ({elsewhere} on the other consumer); " +
                       $"bound {bound}; {Run}, {Topology}";
        output.WriteLine(describe);
        Evidence.Write($"ordering-{Run}-{Topology}-single-query-behind-generate", new
        {
            Topology = Topology.ToString(),
            Gate = GateEnabled,
            Mode = Mode.ToString(),
            Consumers,
            SlotBudget,
            PrefetchPerLimit,
            BacklogTasks = BacklogSize,
            BacklogTaskMs = BacklogMs,
            Overtakes = overtakes,
            Elsewhere = elsewhere,
            Bound = bound,
            Asserted = $"overtakes <= {bound}",
        }, describe);
        Assert.True(Log.StartedIn(SessionLane.Generate) < BacklogSize, "the backlog must still be waiting when the query starts");
        Assert.True(overtakes <= bound, describe);
    }
}

[Collection(BrokerCollection.Name)]
public sealed class QueuePerLaneOrderingTests(BrokerFixture broker, ITestOutputHelper output) : LaneOrderingSuite(broker, output)
{
    protected override LaneTopology Topology => LaneTopology.QueuePerLane;
}

[Collection(BrokerCollection.Name)]
public sealed class PriorityQueueOrderingTests(BrokerFixture broker, ITestOutputHelper output) : LaneOrderingSuite(broker, output)
{
    protected override LaneTopology Topology => LaneTopology.PriorityQueue;
}

/// <summary>
/// The queue-per-lane suite with the controls' window (<see cref="LaneQueueOptions.PrefetchPerLimit"/> 2, the default up to
/// 1.3), where the flood of short queries depends on the gate's hold: the run the gate-off control is compared with.
/// </summary>
[Collection(BrokerCollection.Name)]
public sealed class QueuePerLaneWindow2OrderingTests(BrokerFixture broker, ITestOutputHelper output) : LaneOrderingSuite(broker, output)
{
    protected override LaneTopology Topology => LaneTopology.QueuePerLane;

    protected override int PrefetchPerLimit => 2;

    protected override string Run => "gate-on-window-2";
}

/// <summary>The control run: queue per lane with the lane gate off. The burst tests must exceed the bound the gate holds.</summary>
[Collection(BrokerCollection.Name)]
public sealed class QueuePerLaneGateOffControlTests(BrokerFixture broker, ITestOutputHelper output) : LaneOrderingSuite(broker, output)
{
    protected override LaneTopology Topology => LaneTopology.QueuePerLane;

    protected override bool GateEnabled => false;

    protected override int PrefetchPerLimit => 2;

    protected override string Run => "gate-off";
}

/// <summary>
/// The control run for slot use: queue per lane with the rule before 1.0 (<see cref="GateMode.Strict"/>: every lower lane
/// waits while a higher lane has ready work, even at its own limit). The control burst must leave slots idle.
/// </summary>
[Collection(BrokerCollection.Name)]
public sealed class QueuePerLaneStrictControlTests(BrokerFixture broker, ITestOutputHelper output) : LaneOrderingSuite(broker, output)
{
    protected override LaneTopology Topology => LaneTopology.QueuePerLane;

    protected override GateMode Mode => GateMode.Strict;

    protected override int PrefetchPerLimit => 2;

    protected override string Run => "strict";
}
