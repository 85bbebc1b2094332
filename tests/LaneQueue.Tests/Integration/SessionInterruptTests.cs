using System.Collections.Concurrent;
using System.CommandLine;
using LaneQueue.Cli;
using LaneQueue.Consumer;
using LaneQueue.Consumer.Testing;
using LaneQueue.Tests.Broker;
using Microsoft.Extensions.DependencyInjection;

namespace LaneQueue.Tests.Integration;

/// <summary>
/// Session interrupts: a fleet command (producer API, CLI, or a <c>lanequeue.interrupt</c> task on the control lane) that asks
/// every running task of one session, on any consumer, to yield or to cancel.
/// </summary>
[Collection(BrokerCollection.Name)]
public class SessionInterruptTests(BrokerFixture broker)
{
    static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    static async Task<IAsyncDisposable> RecordAsync(LaneQueueProducer producer, ConcurrentQueue<TaskEvent> events) =>
        await producer.WatchEventsAsync(e =>
        {
            events.Enqueue(e);
            return Task.CompletedTask;
        });

    static Task Seen(ConcurrentQueue<TaskEvent> events, string taskId, string name, string what) =>
        TestVhost.EventuallyAsync(() => Task.FromResult(events.Any(e => e.TaskId == taskId && e.Event == name)), what);

    [Fact]
    public async Task A_control_lane_interrupt_makes_the_sessions_running_preemptible_task_yield_on_any_consumer_and_resume_once()
    {
        await using var fleet = new TestFleet(await broker.CreateVhostAsync());
        // Slots to spare (8 for 4 tasks): no lane preemption, only the interrupt can make a task yield. Control limit 1:
        // as many control tasks as the control lane prefetches, held here, leave the interrupt task to consumer 1.
        var controlPrefetch = ConsumerRegistration.LanePrefetch(1, new LaneQueueOptions().PrefetchPerLimit);
        var second = await fleet.StartConsumerAsync("interrupt-2", o =>
        {
            o.SlotBudget = 8;
            o.Queue = o.Queue with { ControlMaxConcurrency = 1 };
        }, h => h.AddBuiltInHandlers());
        var events = new ConcurrentQueue<TaskEvent>();
        await using var recording = await RecordAsync(fleet.Producer, events);

        // The session's background work runs on consumer 2: a preemptible 4 s generate task and a non-preemptible execute one;
        // another session's preemptible task beside them.
        var background = fleet.Producer.SubmitAndWaitAsync(ExternalTask.Create("analysis-1", SessionLane.Generate, new { ms = 4000 }, "sleep")
            with { SessionId = "s-1", Preemptible = true }, Wait);
        var steady = fleet.Producer.SubmitAndWaitAsync(ExternalTask.Create("steady-1", SessionLane.Execute, new { ms = 2500 }, "sleep")
            with { SessionId = "s-1" }, Wait);
        var other = fleet.Producer.SubmitAndWaitAsync(ExternalTask.Create("other-1", SessionLane.Execute, new { ms = 2500 }, "sleep")
            with { SessionId = "s-other", Preemptible = true }, Wait);
        await Seen(events, "analysis-1", TaskEvent.Started, "analysis-1 started");
        await Seen(events, "steady-1", TaskEvent.Started, "steady-1 started");
        await Seen(events, "other-1", TaskEvent.Started, "other-1 started");
        // Consumer 2 takes no more control work: one control task of another session runs there, two wait for the lane.
        var hogs = Enumerable.Range(1, controlPrefetch).Select(i => fleet.Producer.SubmitAndWaitAsync(
            ExternalTask.Create($"hog-{i}", SessionLane.Control, new { ms = 60_000 }, "sleep") with { SessionId = "s-hog" }, Wait)).ToList();
        var slots = second.Services.GetRequiredService<LaneSlots>();
        await TestVhost.EventuallyAsync(() => Task.FromResult(slots.WaitingIn(SessionLane.Control) == controlPrefetch - 1), "consumer 2 holding its whole control prefetch");
        await Task.Delay(600); // some of the sleep is done: the checkpoint says how much
        await fleet.StartConsumerAsync("interrupt-1", o => o.SlotBudget = 4, h => h.AddBuiltInHandlers());

        // The interrupt, as any-language producers send it: a task on the control lane.
        var interrupt = ExternalTask.Create("interrupt-s-1", SessionLane.Control, new { session_id = "s-1" }, "lanequeue.interrupt") with { SessionId = "s-1" };
        var sentAt = DateTimeOffset.UtcNow;
        var asked = fleet.Producer.SubmitAndWaitAsync(interrupt, Wait);
        var answer = await asked;
        Assert.True(answer.Success, answer.Error);
        Assert.Equal("yield", answer.Result.GetProperty("mode").GetString());

        await Seen(events, "analysis-1", TaskEvent.Preempted, "analysis-1 yielded");
        var yielded = events.First(e => e.TaskId == "analysis-1" && e.Event == TaskEvent.Preempted);
        var latencyMs = (yielded.At - sentAt).TotalMilliseconds;

        var done = await background;
        Assert.Equal(TaskStatuses.Completed, done.Status);
        var resumedFrom = done.Result.GetProperty("resumed_from_ms").GetInt64();
        Assert.InRange(resumedFrom, 500, 3999); // resumed from its checkpoint, not from the start
        Assert.Equal(TaskStatuses.Completed, (await steady).Status); // not preemptible: runs on through a yield interrupt
        Assert.Equal(TaskStatuses.Completed, (await other).Status);  // another session: untouched
        await TestVhost.EventuallyAsync(() => Task.FromResult(events.Count(e => e.TaskId == "analysis-1" && e.Event == TaskEvent.Completed) == 1), "analysis-1 completed");
        Assert.Single(events, e => e.TaskId == "analysis-1" && e.Event == TaskEvent.Preempted); // asked once: its resumed run is left alone
        Assert.Equal(2, events.Count(e => e.TaskId == "analysis-1" && e.Event == TaskEvent.Started));
        Assert.DoesNotContain(events, e => e.TaskId is "steady-1" or "other-1" && e.Event is TaskEvent.Preempted or TaskEvent.Cancelled);
        Assert.Equal("interrupt-2", yielded.Consumer);
        var interruptRanOn = events.First(e => e.TaskId == "interrupt-s-1" && e.Event == TaskEvent.Started).Consumer;
        Assert.Equal("interrupt-1", interruptRanOn); // through consumer 1's lanes, to a task running on consumer 2
        await fleet.Producer.CancelSessionAsync("s-hog");
        Assert.All(await Task.WhenAll(hogs), r => Assert.Equal(TaskStatuses.Cancelled, r.Status));
        Assert.True(latencyMs < 5000, $"yielded {latencyMs:0} ms after the interrupt was submitted");
        Evidence.Write("session-interrupt", new
        {
            interrupt_ran_on = interruptRanOn,
            yielded_on = yielded.Consumer,
            yield_after_interrupt_submitted_ms = Math.Round(latencyMs, 1),
            resumed_from_ms = resumedFrom,
            runs_of_the_interrupted_task = 2,
            results_of_the_interrupted_task = 1,
        }, "A lanequeue.interrupt task on the control lane, run by consumer interrupt-1: the session's preemptible generate task on consumer interrupt-2 yields (command.preempted) "
           + "this long after the interrupt task was submitted (the interrupt task runs, its fleet command goes through the broker's fleet log to every "
           + "consumer's listener, the handler returns its checkpoint), resumes from its checkpoint and completes once.");
    }

    [Fact]
    public async Task Interrupt_with_cancel_from_the_cli_cancels_the_sessions_running_tasks_and_leaves_later_ones()
    {
        await using var fleet = new TestFleet(await broker.CreateVhostAsync());
        await fleet.StartConsumerAsync("interrupt-3", o => o.SlotBudget = 2, h => h.AddBuiltInHandlers());
        var events = new ConcurrentQueue<TaskEvent>();
        await using var recording = await RecordAsync(fleet.Producer, events);
        var running = fleet.Producer.SubmitAndWaitAsync(ExternalTask.Create("long-1", SessionLane.Execute, new { ms = 20_000 }, "sleep") with { SessionId = "s-2" }, Wait);
        await Seen(events, "long-1", TaskEvent.Started, "long-1 started");

        var output = new StringWriter();
        var code = await ProducerCli.RunAsync(["interrupt", "--session", "s-2", "--cancel", "--url", fleet.Vhost.Url], new InvocationConfiguration { Output = output, Error = output });
        Assert.Equal(0, code);
        Assert.Contains("interrupt (cancel) sent for session s-2", output.ToString());

        var cancelled = await running;
        Assert.Equal(TaskStatuses.Cancelled, cancelled.Status);
        // A task of the session that starts after the interrupt runs as usual.
        var later = await fleet.Producer.SubmitAndWaitAsync(ExternalTask.Create("later-1", SessionLane.Execute, new { ms = 50 }, "sleep") with { SessionId = "s-2" }, Wait);
        Assert.Equal(TaskStatuses.Completed, later.Status);
    }

    [Fact]
    public async Task A_bad_interrupt_task_fails_with_the_field_named_and_is_not_retried()
    {
        await using var fleet = new TestFleet(await broker.CreateVhostAsync());
        await fleet.StartConsumerAsync("interrupt-4");
        var result = await fleet.Producer.SubmitAndWaitAsync(ExternalTask.Create("bad-interrupt", SessionLane.Control, new { cancel = true }, "lanequeue.interrupt"), Wait);
        Assert.Equal(TaskStatuses.Failed, result.Status);
        Assert.Contains("session_id", result.Error);
        Assert.Equal(1, result.Attempts);
    }

    [Fact]
    public async Task The_harness_interrupts_a_session_as_the_fleet_does()
    {
        await using var harness = new LaneQueueTestHarness();
        harness.Consumer.AddBuiltInHandlers();
        harness.Start();
        var events = new ConcurrentQueue<TaskEvent>();
        await using var watch = await harness.WatchEventsAsync(e =>
        {
            events.Enqueue(e);
            return Task.CompletedTask;
        });
        var background = harness.SubmitAndWaitAsync(ExternalTask.Create("h-bg", SessionLane.Generate, new { ms = 3000 }, "sleep") with { SessionId = "hs", Preemptible = true }, Wait);
        await Seen(events, "h-bg", TaskEvent.Started, "started");
        await Task.Delay(300);
        var interrupt = await harness.SubmitAndWaitAsync(ExternalTask.Create("h-int", SessionLane.Control, new { session_id = "hs" }, "lanequeue.interrupt") with { SessionId = "hs" }, Wait);
        Assert.True(interrupt.Success, interrupt.Error);
        var done = await background;
        Assert.Equal(TaskStatuses.Completed, done.Status);
        Assert.True(done.Result.GetProperty("resumed_from_ms").GetInt64() > 0);
        Assert.Single(events, e => e.TaskId == "h-bg" && e.Event == TaskEvent.Preempted);
    }

    [Fact]
    public async Task Interrupt_tasks_are_refused_where_the_operator_turned_them_off()
    {
        await using var harness = new LaneQueueTestHarness(o => o.InterruptTasks = false);
        harness.Start();
        var result = await harness.SubmitAndWaitAsync(ExternalTask.Create("off-1", SessionLane.Control, new { session_id = "s" }, "lanequeue.interrupt"), Wait);
        Assert.Equal(TaskStatuses.Failed, result.Status);
        Assert.Contains("LaneQueue:InterruptTasks=false", result.Error);
        Assert.Equal(1, result.Attempts);
    }
}
