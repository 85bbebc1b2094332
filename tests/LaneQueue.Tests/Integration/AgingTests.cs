using LaneQueue.Consumer;
using LaneQueue.Contracts;
using LaneQueue.Tests.Broker;

namespace LaneQueue.Tests.Integration;

/// <summary>Priority boost (aging): a lower lane is not starved by a continuous flood of higher work.</summary>
[Collection(BrokerCollection.Name)]
public sealed class AgingTests(BrokerFixture broker) : FleetTest(broker)
{
    const int DeadlineMs = 2000;

    protected override LaneTopology Topology => LaneTopology.QueuePerLane;

    protected override void Configure(LaneQueueOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Queue = options.Queue with { PriorityBoost = new PriorityBoost { Strategy = BoostStrategy.Standard, DeadlineMs = DeadlineMs } };
    }

    [Fact]
    public async Task Under_a_continuous_query_flood_a_generate_task_starts_within_its_boost_deadline()
    {
        const int flood = 400;
        await SubmitAsync(Backlog("flood", SessionLane.Query, flood, 100));
        await TestVhost.EventuallyAsync(() => Task.FromResult(Log.StartedIn(SessionLane.Query) >= 8), "the flood is running");
        await TestVhost.EventuallyAsync(() => Task.FromResult(Fleet.All(h => h.IsPaused(SessionLane.Generate))), "every consumer paused generate behind the flood");

        var submittedAt = DateTimeOffset.UtcNow;
        await Producer.SubmitTaskAsync(StartLog.Make("starved-1", SessionLane.Generate, 0));
        var generate = await StartOfAsync("starved-1", timeoutSeconds: 120);
        var waited = generate.At - submittedAt;

        Assert.True(Log.StartedIn(SessionLane.Query) < flood, "the query flood must still be waiting when generate starts");
        // Held at first (the gate paused generate behind the flood), then admitted by its boost: standard aging lifts
        // generate above query at half the deadline, and past the deadline nothing holds it.
        Assert.True(waited > TimeSpan.FromMilliseconds(DeadlineMs / 4),
            $"generate started after {waited.TotalMilliseconds:0} ms: it was never held behind the query flood");
        Assert.True(waited < TimeSpan.FromMilliseconds(DeadlineMs + 1000),
            $"generate waited {waited.TotalMilliseconds:0} ms under the flood; its boost deadline is {DeadlineMs} ms");
    }
}
