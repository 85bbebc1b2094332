using LaneQueue.Consumer;
using LaneQueue.Contracts;
using LaneQueue.Tests.Broker;
using Xunit.Abstractions;

namespace LaneQueue.Tests.Integration;

/// <summary>Priority boost (aging): a lower lane is not starved by a continuous flood of higher work.</summary>
[Collection(BrokerCollection.Name)]
public sealed class AgingTests(BrokerFixture broker, ITestOutputHelper output) : FleetTest(broker)
{
    const int DeadlineMs = 2000;
    const int FloodTaskMs = 100;
    /// <summary>Scheduling slack on top of the deadline for a loaded 2-core machine: the boost's decision is what is exact.</summary>
    const int SlackMs = 2000;

    protected override LaneTopology Topology => LaneTopology.QueuePerLane;

    protected override void Configure(LaneQueueOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Queue = options.Queue with { PriorityBoost = new PriorityBoost { Strategy = BoostStrategy.Standard, DeadlineMs = DeadlineMs } };
    }

    [Fact]
    public async Task Under_a_continuous_query_flood_a_generate_task_starts_within_its_boost_deadline()
    {
        // More query work than the fleet can start before the upper bound (8 slots x 100 ms: 600 tasks take 7.5 s), so without
        // aging generate would wait for the whole flood.
        const int flood = 600;
        await SubmitAsync(Backlog("flood", SessionLane.Query, flood, FloodTaskMs));
        await TestVhost.EventuallyAsync(() => Task.FromResult(Log.StartedIn(SessionLane.Query) >= 8), "the flood is running");

        var submittedAt = DateTimeOffset.UtcNow;
        await Producer.SubmitTaskAsync(StartLog.Make("starved-1", SessionLane.Generate, 0));
        var generate = await StartOfAsync("starved-1", timeoutSeconds: 120);
        var waited = generate.At - submittedAt;

        output.WriteLine($"generate waited {waited.TotalMilliseconds:0} ms under the flood (deadline {DeadlineMs} ms)");
        Evidence.Write("aging-generate-under-query-flood", new
        {
            Boost = "Standard",
            DeadlineMs,
            Consumers,
            FloodTasks = flood,
            FloodTaskMs,
            WaitedMs = Math.Round(waited.TotalMilliseconds),
            Asserted = $"{DeadlineMs / 2} ms <= wait < {DeadlineMs + SlackMs} ms, flood still waiting",
        });
        Assert.True(Log.StartedIn(SessionLane.Query) < flood, "the query flood must still be waiting when generate starts");
        // Held at first: the consumer's scheduler starts the lane's aging clock when the task arrives (after the submit), and
        // standard aging lifts generate level with query (2 levels) only when half the deadline has passed (above it at 3
        // levels, three quarters), so it cannot start sooner.
        Assert.True(waited >= TimeSpan.FromMilliseconds(DeadlineMs / 2),
            $"generate started after {waited.TotalMilliseconds:0} ms, before half its {DeadlineMs} ms deadline: it was not held behind the query flood");
        // Admitted by its boost: at half the deadline, and past the deadline nothing holds it; the slack is for starting it
        // (a free slot) on a loaded machine. Without aging it would wait for the whole flood.
        Assert.True(waited < TimeSpan.FromMilliseconds(DeadlineMs + SlackMs),
            $"generate waited {waited.TotalMilliseconds:0} ms under the flood; its boost deadline is {DeadlineMs} ms (+ {SlackMs} ms slack)");
    }
}
