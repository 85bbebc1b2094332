using LaneQueue.Consumer;
using LaneQueue.Contracts;
using LaneQueue.Producer;
using LaneQueue.Tests.Broker;
using Microsoft.Extensions.Hosting;

namespace LaneQueue.Tests.Integration;

/// <summary>
/// Priority between lanes across a fleet of two consumers (two buses in this process), asserted on the recorded
/// start sequence. One suite, run against both topologies by the subclasses below.
/// </summary>
public abstract class LaneOrderingSuite(BrokerFixture broker) : FleetTest(broker)
{
    /// <summary>Deliveries of a lane a consumer may hold before the gate or the broker's ordering can act.</summary>
    int HeldPerConsumer(SessionLane lane) =>
        Topology == LaneTopology.QueuePerLane ? new SessionQueueConfig().MaxConcurrency(lane) : SlotBudget;

    async Task<StartLog.Entry> OvertakeAsync(SessionLane backlogLane, SessionLane urgentLane, int backlogMs)
    {
        const int backlog = 300;
        await SubmitAsync(Backlog("backlog", backlogLane, backlog, backlogMs));
        await WaitForStartsAsync(backlogLane, 10);

        var submittedAt = DateTimeOffset.UtcNow;
        await Producer.SubmitTaskAsync(StartLog.Make("urgent", urgentLane, 0));
        var urgent = await StartOfAsync("urgent");

        var overtaken = Log.Starts.Count(s => s.Lane == backlogLane && s.At > submittedAt && s.Sequence < urgent.Sequence);
        Assert.True(Log.StartedIn(backlogLane) < backlog, "the backlog must still be waiting when the urgent task starts");
        Assert.True(overtaken <= Consumers * HeldPerConsumer(backlogLane),
            $"{overtaken} {backlogLane} tasks started between the {urgentLane} task's submit and its start; " +
            $"at most {Consumers * HeldPerConsumer(backlogLane)} (already delivered under prefetch) may");
        return urgent;
    }

    [Fact]
    public async Task Query_submitted_later_starts_before_generate_tasks_already_waiting() =>
        await OvertakeAsync(SessionLane.Generate, SessionLane.Query, backlogMs: 20);

    [Fact]
    public async Task Control_submitted_later_starts_before_query_tasks_already_waiting() =>
        await OvertakeAsync(SessionLane.Query, SessionLane.Control, backlogMs: 20);

    [Fact]
    public async Task While_query_has_ready_messages_no_generate_task_starts_on_any_consumer_then_all_resume_and_complete()
    {
        const int generate = 200, query = 120;
        await SubmitAsync(Backlog("gen", SessionLane.Generate, generate, 20));
        await WaitForStartsAsync(SessionLane.Generate, 10);

        await SubmitAsync(Backlog("query", SessionLane.Query, query, 50));
        await WaitForStartsAsync(SessionLane.Query, query);
        var queryStarts = Log.Starts.Where(s => s.Lane == SessionLane.Query).ToList();
        var first = queryStarts.Min(s => s.At);
        var last = queryStarts.Max(s => s.At);
        var generateWhileQueryWaited = Log.Starts.Count(s => s.Lane == SessionLane.Generate && s.At > first && s.At < last);
        var bound = Consumers * (HeldPerConsumer(SessionLane.Generate) + 1);
        Assert.True(last - first > TimeSpan.FromMilliseconds(300), $"the query backlog drained too fast ({(last - first).TotalMilliseconds} ms) to tell");
        Assert.True(generateWhileQueryWaited <= bound,
            $"{generateWhileQueryWaited} generate tasks started while query tasks waited over {(last - first).TotalMilliseconds:0} ms; at most {bound} may");

        // Resuming: once the query lane drains, generate resumes and every task completes exactly once.
        await TestVhost.EventuallyAsync(() => Task.FromResult(Log.Finished.Count >= generate + query), "every task finished", timeoutSeconds: 120);
        await Task.Delay(500);
        Assert.Equal(generate + query, Log.Finished.Count);
        Assert.Equal(generate + query, Log.Starts.Select(s => s.Id).Distinct().Count());
        Assert.Equal(generate + query, Log.Starts.Count);
        Assert.All(Names, name => Assert.Contains(Log.Starts, s => s.Lane == SessionLane.Generate && s.Consumer == name));
    }

}

[Collection(BrokerCollection.Name)]
public sealed class QueuePerLaneOrderingTests(BrokerFixture broker) : LaneOrderingSuite(broker)
{
    protected override LaneTopology Topology => LaneTopology.QueuePerLane;
}

[Collection(BrokerCollection.Name)]
public sealed class PriorityQueueOrderingTests(BrokerFixture broker) : LaneOrderingSuite(broker)
{
    protected override LaneTopology Topology => LaneTopology.PriorityQueue;
}
