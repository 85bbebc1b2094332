using LaneQueue.Consumer;
using LaneQueue.Contracts;
using LaneQueue.Producer;
using LaneQueue.Tests.Broker;
using Xunit.Abstractions;

namespace LaneQueue.Tests.Integration;

/// <summary>
/// Fair turns between sessions inside a lane, across a fleet of two consumers with session shards on generate
/// (<see cref="LaneQueueOptions.SessionShards"/>): session A's backlog of 2,000 tasks waits in its shard, session B's 20 tasks
/// arrive later in another and start beside A's, the slots going to the sessions in turn. Without shards B's tasks wait
/// behind all of A's (the test fails: tried with <see cref="Shards"/> = 0). Run on classic and on quorum queues.
/// </summary>
public abstract class SessionFairnessSuite(BrokerFixture broker, ITestOutputHelper output) : FleetTest(broker)
{
    protected virtual bool Quorum => false;

    const int Shards = 8;
    const int BacklogTasks = 2000;
    const int LateTasks = 20;
    const int TaskMs = 20;
    /// <summary>Generate slots of the fleet: both consumers run up to the whole budget of generate.</summary>
    const int FleetSlots = Consumers * SlotBudget;

    protected override LaneTopology Topology => LaneTopology.QueuePerLane;

    protected override void Configure(LaneQueueOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Queue = options.Queue with { GenerateMaxConcurrency = SlotBudget };
        options.SessionShards[SessionLane.Generate] = Shards;
        options.QuorumQueues = Quorum;
    }

    protected override void ConfigureProducer(ProducerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.SessionShards[SessionLane.Generate] = Shards;
        options.QuorumQueues = Quorum;
    }

    static IEnumerable<ExternalTask> Session(string session, int count) =>
        Enumerable.Range(1, count).Select(i => StartLog.Make($"{session}-{i}", SessionLane.Generate, TaskMs) with { SessionId = session });

    [Fact]
    public async Task A_late_session_takes_turns_with_a_session_whose_backlog_came_first()
    {
        // Two sessions in different shards (a shared shard would still alternate among the tasks a consumer holds, but the
        // broker would keep B's behind A's backlog in that queue).
        const string a = "session-a", b = "session-b2";
        Assert.NotEqual(SessionShards.Of(a, Shards), SessionShards.Of(b, Shards));

        await SubmitAsync(Session(a, BacklogTasks));
        await WaitForStartsAsync(SessionLane.Generate, 4 * FleetSlots);
        await SubmitAsync(Session(b, LateTasks));
        var confirmed = DateTimeOffset.UtcNow;
        await TestVhost.EventuallyAsync(() => Task.FromResult(Log.Starts.Count(s => s.Id.StartsWith(b + "-", StringComparison.Ordinal)) >= LateTasks),
            $"{LateTasks} tasks of {b} started", timeoutSeconds: 120);

        var starts = Log.Starts.OrderBy(s => s.At).ThenBy(s => s.Sequence).ToList();
        var late = starts.Where(s => s.Id.StartsWith(b + "-", StringComparison.Ordinal)).ToList();
        // For each of B's tasks (in start order), the tasks of A that started after B's submit was confirmed and before it.
        var aBefore = late.Select(start => starts.Count(s => s.Id.StartsWith(a + "-", StringComparison.Ordinal) && s.At > confirmed && s.At < start.At)).ToList();
        // Round-robin: one A task per B task, plus what started while B's tasks were on their way to the consumers (a round of
        // the fleet's slots) and two rounds of slack for a loaded machine: B's tasks start within 3 rounds of the slots.
        var bounds = aBefore.Select((_, j) => j + 1 + 3 * FleetSlots).ToList();
        var waitMs = late.Select(s => (s.At - confirmed).TotalMilliseconds).ToList();
        var aDuring = aBefore[^1];
        var describe = $"{a}: {BacklogTasks} tasks first, then {b}: {LateTasks}; {FleetSlots} generate slots in the fleet, {Shards} shards; " +
                       $"A tasks started before each B task: [{string.Join(", ", aBefore)}] (bound j + {3 * FleetSlots}); " +
                       $"B's first start {waitMs[0]:0} ms and last {waitMs[^1]:0} ms after its submit was confirmed (negative: before); " +
                       $"A started {Log.Starts.Count(s => s.Id.StartsWith(a + "-", StringComparison.Ordinal))} in all";
        output.WriteLine(describe);
        Evidence.Write(Quorum ? "session-fairness-quorum" : "session-fairness", new
        {
            Quorum,
            Consumers,
            FleetSlots,
            Shards,
            BacklogTasks,
            LateTasks,
            TaskMs,
            ABeforeEachB = aBefore,
            ADuringB = aDuring,
            BFirstStartMs = Math.Round(waitMs[0]),
            BLastStartMs = Math.Round(waitMs[^1]),
            Asserted = $"A starts after B's confirm and before B's j-th start <= j + {3 * FleetSlots}",
        }, describe);

        Assert.True(Log.Starts.Count(s => s.Id.StartsWith(a + "-", StringComparison.Ordinal)) < BacklogTasks, "A's backlog must still be waiting: " + describe);
        for (var j = 0; j < aBefore.Count; j++)
            Assert.True(aBefore[j] <= bounds[j], $"B's task {j + 1} waited behind {aBefore[j]} of A's (bound {bounds[j]}): {describe}");
    }
}

[Collection(BrokerCollection.Name)]
public sealed class SessionFairnessTests(BrokerFixture broker, ITestOutputHelper output) : SessionFairnessSuite(broker, output);

[Collection(BrokerCollection.Name)]
public sealed class QuorumSessionFairnessTests(BrokerFixture broker, ITestOutputHelper output) : SessionFairnessSuite(broker, output)
{
    protected override bool Quorum => true;
}
