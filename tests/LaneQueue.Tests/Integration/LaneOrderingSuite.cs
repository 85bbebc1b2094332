using LaneQueue.Consumer;
using LaneQueue.Contracts;
using LaneQueue.Producer;
using LaneQueue.Tests.Broker;
using Xunit.Abstractions;

namespace LaneQueue.Tests.Integration;

/// <summary>
/// Priority between lanes across a fleet of two consumers (two buses in this process), asserted on the recorded start
/// sequence. Every slot of every consumer is busy on the lower lane when the higher-lane work arrives (generate
/// concurrency = query concurrency = slot budget = 4, as in the bench), so the higher lane can only get a slot the lower
/// lane gives up.
/// <para>
/// The burst tests are what the lane gate is for: more higher-lane tasks than the fleet prefetches, so some wait at the
/// broker. While they wait, the gate keeps the lower lane's endpoint stopped on every consumer; without it every
/// consumer keeps taking lower-lane deliveries and hands them the slots its finished higher-lane tasks give back. The
/// suite runs against both topologies with the gate on (<see cref="QueuePerLaneOrderingTests"/>,
/// <see cref="PriorityQueueOrderingTests"/>) and as a control run with the gate off
/// (<see cref="QueuePerLaneGateOffControlTests"/>), which must show more overtakes than the bound the others are held to:
/// a suite that passed without the gate would prove nothing about it.
/// </para>
/// </summary>
public abstract class LaneOrderingSuite(BrokerFixture broker, ITestOutputHelper output) : FleetTest(broker)
{
    /// <summary>Lower-lane backlog: long enough to still be waiting when the burst has all started.</summary>
    const int BacklogSize = 1000;
    const int BacklogMs = 50;
    /// <summary>
    /// Higher-lane burst: well over the fleet's prefetch of that lane (2 x 4 query, 2 x 2 control). Each task runs 200 ms:
    /// no higher-lane slot is given back before the gate's pause has had that long to land (on a loaded machine too).
    /// </summary>
    const int BurstSize = 100;
    const int BurstMs = 200;

    /// <summary>False in the control run: the lane gate is switched off (<c>Gate:Enabled=false</c>).</summary>
    protected virtual bool GateEnabled => true;

    static readonly SessionQueueConfig Lanes = new() { GenerateMaxConcurrency = SlotBudget, QueryMaxConcurrency = SlotBudget };

    protected override void Configure(LaneQueueOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Gate.Enabled = GateEnabled;
        options.Queue = options.Queue with { GenerateMaxConcurrency = Lanes.GenerateMaxConcurrency, QueryMaxConcurrency = Lanes.QueryMaxConcurrency };
    }

    /// <summary>
    /// Lower-lane deliveries the fleet holds under prefetch: queue per lane, the lane's prefetch (= its max concurrency, 4)
    /// per consumer; priority queue, the consumer's prefetch (= the slot budget, 4), since the broker orders by priority
    /// only what it has not delivered yet. A single higher-lane task may be overtaken by at most these.
    /// </summary>
    protected int Prefetched(SessionLane lowerLane) =>
        Consumers * (Topology == LaneTopology.QueuePerLane ? Lanes.MaxConcurrency(lowerLane) : SlotBudget);

    /// <summary>
    /// Lower-lane tasks that may start while a burst waits: what the fleet holds under prefetch when the burst lands, and as
    /// many again while every consumer's gate reads the broker and stops the lane (on a loaded 2-core machine that takes
    /// some of the lower lane's task turnovers). Without the gate the count is not bounded by anything but the burst's length.
    /// </summary>
    protected int Bound(SessionLane lowerLane) => 2 * Prefetched(lowerLane);

    sealed record Outcome(int Overtakes, int BacklogStarted, TimeSpan BurstSpan, string Describe);

    /// <summary>
    /// Fills every slot with <paramref name="lower"/> work, then submits a burst of <paramref name="higher"/> tasks and
    /// counts the lower-lane tasks that started while the burst waited: after the broker had confirmed the whole burst and
    /// before its last task started (the last ones waited at the broker all that time). Lower-lane tasks that start while
    /// the burst is still being published are not counted: a consumer cannot prefer work it has not been given yet.
    /// </summary>
    async Task<Outcome> BurstBehindBacklogAsync(SessionLane lower, SessionLane higher)
    {
        await SubmitAsync(Backlog("backlog", lower, BacklogSize, BacklogMs));
        await WaitForStartsAsync(lower, 4 * Consumers * SlotBudget);

        await SubmitAsync(Backlog("urgent", higher, BurstSize, BurstMs));
        var confirmed = DateTimeOffset.UtcNow;
        await WaitForStartsAsync(higher, BurstSize);
        var last = Log.Starts.Where(s => s.Lane == higher).MaxBy(s => s.Sequence)!;
        var overtakes = Log.Starts.Count(s => s.Lane == lower && s.At > confirmed && s.Sequence < last.Sequence);
        var describe = $"{overtakes} {lower.WireName()} tasks started while {BurstSize} {higher.WireName()} tasks ({BurstMs} ms each) waited " +
                       $"(from the broker's confirm of the whole burst to the start of its last task, {(last.At - confirmed).TotalMilliseconds:0} ms); " +
                       $"bound {Bound(lower)} (2 x {Prefetched(lower)} delivered under prefetch over {Consumers} consumers); gate {(GateEnabled ? "on" : "off")}, {Topology}";
        return new Outcome(overtakes, Log.StartedIn(lower), last.At - confirmed, describe);
    }

    void AssertBound(Outcome outcome, SessionLane lower, string test)
    {
        output.WriteLine(outcome.Describe);
        Evidence.Write($"ordering-{(GateEnabled ? "gate-on" : "gate-off")}-{Topology}-{test}", new
        {
            Topology = Topology.ToString(),
            Gate = GateEnabled,
            Consumers,
            SlotBudget,
            BacklogLane = lower.WireName(),
            BacklogTasks = BacklogSize,
            BacklogTaskMs = BacklogMs,
            BurstTasks = BurstSize,
            BurstTaskMs = BurstMs,
            outcome.Overtakes,
            Bound = Bound(lower),
            BurstSpanMs = Math.Round(outcome.BurstSpan.TotalMilliseconds),
            Asserted = GateEnabled ? $"overtakes <= {Bound(lower)}" : $"overtakes > {Bound(lower)}",
        }, outcome.Describe);
        Assert.True(outcome.BacklogStarted < BacklogSize, $"the {lower.WireName()} backlog must still be waiting when the burst has started: {outcome.Describe}");
        Assert.True(outcome.BurstSpan > TimeSpan.FromMilliseconds(BurstMs * 2), $"the burst drained too fast to tell: {outcome.Describe}");
        if (GateEnabled)
        {
            Assert.True(outcome.Overtakes <= Bound(lower), outcome.Describe);
        }
        else
        {
            // The control run: the same scenario without the gate must break the bound, or the suite cannot tell the gate is there.
            Assert.True(outcome.Overtakes > Bound(lower), "the gate-off control run must exceed the bound the gate holds: " + outcome.Describe);
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
    public async Task A_control_burst_starts_before_the_waiting_query_backlog()
    {
        var outcome = await BurstBehindBacklogAsync(SessionLane.Query, SessionLane.Control);
        AssertBound(outcome, SessionLane.Query, "control-burst-behind-query");
    }

    /// <summary>
    /// One query behind the backlog: held by the slot budget (the next free slot goes to the highest lane waiting for one),
    /// so it holds with the gate off too; the control run asserts the same bound.
    /// </summary>
    [Fact]
    public async Task A_single_query_starts_before_the_generate_tasks_already_waiting_with_or_without_the_gate()
    {
        await SubmitAsync(Backlog("backlog", SessionLane.Generate, BacklogSize, BacklogMs));
        await WaitForStartsAsync(SessionLane.Generate, 4 * Consumers * SlotBudget);
        var submittedAt = DateTimeOffset.UtcNow;
        await Producer.SubmitTaskAsync(StartLog.Make("urgent", SessionLane.Query, 0));
        var urgent = await StartOfAsync("urgent");
        var overtakes = Log.Starts.Count(s => s.Lane == SessionLane.Generate && s.At >= submittedAt && s.Sequence < urgent.Sequence);
        output.WriteLine($"{overtakes} generate tasks started between the query's submit and its start; bound {Prefetched(SessionLane.Generate)}; gate {(GateEnabled ? "on" : "off")}, {Topology}");
        Evidence.Write($"ordering-{(GateEnabled ? "gate-on" : "gate-off")}-{Topology}-single-query-behind-generate", new
        {
            Topology = Topology.ToString(),
            Gate = GateEnabled,
            Consumers,
            SlotBudget,
            BacklogTasks = BacklogSize,
            BacklogTaskMs = BacklogMs,
            Overtakes = overtakes,
            Bound = Prefetched(SessionLane.Generate),
            Asserted = $"overtakes <= {Prefetched(SessionLane.Generate)}",
        });
        Assert.True(Log.StartedIn(SessionLane.Generate) < BacklogSize, "the backlog must still be waiting when the query starts");
        Assert.True(overtakes <= Prefetched(SessionLane.Generate),
            $"{overtakes} generate tasks started between the query's submit and its start; at most {Prefetched(SessionLane.Generate)} (delivered under prefetch) may");
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

/// <summary>The control run: queue per lane with the lane gate off. The burst tests must exceed the bound the gate holds.</summary>
[Collection(BrokerCollection.Name)]
public sealed class QueuePerLaneGateOffControlTests(BrokerFixture broker, ITestOutputHelper output) : LaneOrderingSuite(broker, output)
{
    protected override LaneTopology Topology => LaneTopology.QueuePerLane;

    protected override bool GateEnabled => false;
}
