using LaneQueue.Consumer;
using LaneQueue.Contracts;
using LaneQueue.Producer;
using LaneQueue.Tests.Broker;
using Xunit.Abstractions;

namespace LaneQueue.Tests.Integration;

/// <summary>
/// <c>SessionLimits:Generate=1</c> (sequential) with session shards across a fleet of two consumers: three sessions of 50
/// generate tasks each never run two tasks of one session at once, start each session's tasks in submit order, and progress
/// together. Fails without the limit (tried: up to 8 of a session at once), and with the limit but without single-active
/// shard queues the two consumers each run one of a session (tried). Run on classic and on quorum queues.
/// </summary>
public abstract class SequentialSessionSuite(BrokerFixture broker, ITestOutputHelper output) : FleetTest(broker)
{
    protected virtual bool Quorum => false;

    const int Shards = 4;
    const int TasksPerSession = 50;
    const int TaskMs = 20;
    static readonly string[] Sessions = ["conversation-1", "conversation-2", "conversation-3"];

    protected override LaneTopology Topology => LaneTopology.QueuePerLane;

    protected override void Configure(LaneQueueOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Queue = options.Queue with { GenerateMaxConcurrency = SlotBudget };
        options.SessionShards[SessionLane.Generate] = Shards;
        options.SessionLimits[SessionLane.Generate] = 1;
        options.QuorumQueues = Quorum;
    }

    protected override void ConfigureProducer(ProducerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.SessionShards[SessionLane.Generate] = Shards;
        options.SessionLimits[SessionLane.Generate] = 1;
        options.QuorumQueues = Quorum;
    }

    [Fact]
    public async Task Sequential_sessions_run_one_task_at_a_time_in_submit_order_and_progress_together()
    {
        // Submitted one after another (each confirmed before the next), the sessions interleaved.
        for (var i = 1; i <= TasksPerSession; i++)
        {
            foreach (var session in Sessions)
                await Producer.SubmitTaskAsync(StartLog.Make($"{session}-{i}", SessionLane.Generate, TaskMs) with { SessionId = session });
        }
        await TestVhost.EventuallyAsync(() => Task.FromResult(Log.Finished.Count >= Sessions.Length * TasksPerSession), "every task finished", timeoutSeconds: 180);

        var starts = Log.Starts.OrderBy(s => s.At).ThenBy(s => s.Sequence).ToList();
        var ends = Log.Ends.ToDictionary(e => e.Id, e => e.At);
        var overlaps = new List<string>();
        var outOfOrder = new List<string>();
        foreach (var session in Sessions)
        {
            var mine = starts.Where(s => SessionOf(s.Id) == session).ToList();
            Assert.Equal(TasksPerSession, mine.Count);
            for (var k = 1; k < mine.Count; k++)
            {
                if (mine[k].At < ends[mine[k - 1].Id])
                    overlaps.Add($"{mine[k].Id} on {mine[k].Consumer} started while {mine[k - 1].Id} ran on {mine[k - 1].Consumer}");
                if (Index(mine[k].Id) != Index(mine[k - 1].Id) + 1)
                    outOfOrder.Add($"{mine[k].Id} after {mine[k - 1].Id}");
            }
        }
        // Together: at every start, the sessions' started counts differ by little (one session never runs all its tasks first).
        var started = Sessions.ToDictionary(s => s, _ => 0);
        var spread = 0;
        foreach (var start in starts)
        {
            started[SessionOf(start.Id)]++;
            spread = Math.Max(spread, started.Values.Max() - started.Values.Min());
        }
        var consumers = string.Join(", ", Sessions.Select(s => $"{s} on {string.Join("+", starts.Where(x => SessionOf(x.Id) == s).Select(x => x.Consumer).Distinct())}"));
        var describe = $"{Sessions.Length} sessions x {TasksPerSession} tasks of {TaskMs} ms, SessionLimits:Generate=1, {Shards} shards, 2 consumers: " +
                       $"{overlaps.Count} overlaps, {outOfOrder.Count} out of order, largest spread of started counts {spread}; {consumers}";
        output.WriteLine(describe);
        Evidence.Write(Quorum ? "session-sequential-quorum" : "session-sequential", new
        {
            Quorum,
            Sessions = Sessions.Length,
            TasksPerSession,
            TaskMs,
            Shards,
            Overlaps = overlaps.Count,
            OutOfOrder = outOfOrder.Count,
            LargestSpread = spread,
        }, describe);

        Assert.True(overlaps.Count == 0, $"{describe}: {string.Join("; ", overlaps.Take(5))}");
        Assert.True(outOfOrder.Count == 0, $"{describe}: {string.Join("; ", outOfOrder.Take(5))}");
        Assert.True(spread <= 10, describe);
    }

    static string SessionOf(string id) => id[..id.LastIndexOf('-')];

    static int Index(string id) => int.Parse(id[(id.LastIndexOf('-') + 1)..], System.Globalization.CultureInfo.InvariantCulture);
}

[Collection(BrokerCollection.Name)]
public sealed class SequentialSessionTests(BrokerFixture broker, ITestOutputHelper output) : SequentialSessionSuite(broker, output);

[Collection(BrokerCollection.Name)]
public sealed class QuorumSequentialSessionTests(BrokerFixture broker, ITestOutputHelper output) : SequentialSessionSuite(broker, output)
{
    protected override bool Quorum => true;
}
