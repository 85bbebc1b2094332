using LaneQueue.Consumer;
using LaneQueue.Contracts;
using LaneQueue.Tests.Broker;

namespace LaneQueue.Tests.Integration;

/// <summary>The counts of <c>stats</c> come from the task history, so a consumer restart takes nothing away.</summary>
[Collection(BrokerCollection.Name)]
public sealed class StatsCountsTests(BrokerFixture broker) : IAsyncLifetime
{
    static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);
    TestFleet _fleet = null!;

    public async Task InitializeAsync() => _fleet = new TestFleet(await broker.CreateVhostAsync());

    public async Task DisposeAsync() => await _fleet.DisposeAsync();

    static void NoRetries(LaneQueueOptions o)
    {
        o.HeartbeatIntervalMs = 200;
        o.Queue = o.Queue with { RetryPolicy = new RetryPolicy { Strategy = RetryStrategy.None } };
    }

    async Task<LaneStats> LaneAsync(SessionLane lane)
    {
        var stats = await _fleet.Producer.ReadStatsAsync(TimeSpan.FromMilliseconds(500));
        Assert.Equal("history", stats.CountsFrom);
        return stats.Lanes.Single(l => l.Lane == lane.WireName());
    }

    [Fact]
    public async Task Counts_keep_going_when_the_consumer_restarts_mid_count()
    {
        var first = await _fleet.StartConsumerAsync("counter", NoRetries);
        foreach (var i in Enumerable.Range(1, 3))
            Assert.True((await _fleet.Producer.SubmitAndWaitAsync(ExternalTask.Create($"before-{i}", SessionLane.Query), Wait)).Success);
        await TestVhost.EventuallyAsync(async () => (await LaneAsync(SessionLane.Query)).Completed == 3, "3 completed before the restart");

        await first.StopQuietlyAsync();
        _fleet.Hosts.Remove(first);
        await _fleet.StartConsumerAsync("counter", NoRetries);
        foreach (var i in Enumerable.Range(1, 2))
            Assert.True((await _fleet.Producer.SubmitAndWaitAsync(ExternalTask.Create($"after-{i}", SessionLane.Query), Wait)).Success);
        Assert.False((await _fleet.Producer.SubmitAndWaitAsync(ExternalTask.Create("after-fail", SessionLane.Execute, null, "fail"), Wait)).Success);

        await TestVhost.EventuallyAsync(async () => (await LaneAsync(SessionLane.Query)).Completed == 5, "5 completed across the restart");
        await TestVhost.EventuallyAsync(async () => (await LaneAsync(SessionLane.Execute)).DeadLettered == 1, "the dead letter counted");
        // Read again from the stored checkpoint: nothing counted twice.
        var query = await LaneAsync(SessionLane.Query);
        var execute = await LaneAsync(SessionLane.Execute);
        Assert.Equal((5, 0, 0), (query.Completed, query.Failed, query.DeadLettered));
        Assert.Equal((0, 1, 1), (execute.Completed, execute.Failed, execute.DeadLettered));
        Assert.Equal(1u, await _fleet.Vhost.ReadyAsync(BrokerNames.HistoryCounts));
    }
}
