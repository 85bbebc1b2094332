using LaneQueue.Consumer.Testing;
using Microsoft.Extensions.Time.Testing;

namespace LaneQueue.Tests.Unit;

/// <summary>The harness on a fake clock: delayed tasks and de-duplication windows run by advancing time, not by waiting.</summary>
public class HarnessTimeTests
{
    static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task A_delayed_task_starts_when_the_clock_reaches_its_delay_and_a_cancel_while_it_waits_ends_it()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var harness = new LaneQueueTestHarness(time: time);
        harness.Start();
        var later = harness.SubmitAndWaitAsync(ExternalTask.Create("later", SessionLane.Execute, new { n = 1 }).After(TimeSpan.FromSeconds(30)), Wait);
        await harness.SubmitTaskAsync(ExternalTask.Create("cancelled", SessionLane.Execute, new { n = 2 }).After(TimeSpan.FromSeconds(10)));
        await harness.CancelTaskAsync("cancelled"); // while it waits
        await harness.SubmitAndWaitAsync(ExternalTask.Create("now", SessionLane.Execute, new { n = 3 }), Wait); // not held back by them

        time.Advance(TimeSpan.FromSeconds(29));
        await Task.Delay(200);
        Assert.DoesNotContain(harness.Started, s => s.TaskId == "later");
        Assert.False(later.IsCompleted);

        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(TaskStatuses.Completed, (await later).Status);
        await harness.WhenIdleAsync(Wait);
        Assert.Equal(["now", "later"], harness.Started.Select(s => s.TaskId));
        Assert.Equal(TaskStatuses.Cancelled, harness.Results.Single(r => r.TaskId == "cancelled").Status);
    }

    [Fact]
    public async Task A_dedup_key_runs_once_per_window_on_the_harness_clock()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var harness = new LaneQueueTestHarness(time: time);
        harness.Start();
        var results = new List<ExternalTaskResult>();
        foreach (var i in Enumerable.Range(1, 3))
            results.Add(await harness.SubmitAndWaitAsync(ExternalTask.Create($"charge-{i}", SessionLane.Execute, new { i }).DedupedBy("order-42", TimeSpan.FromSeconds(5)), Wait));
        Assert.Equal([TaskStatuses.Completed, TaskStatuses.Duplicate, TaskStatuses.Duplicate], results.Select(r => r.Status));
        Assert.Equal("dedup_key 'order-42' is held by task 'charge-1' (window 5000 ms); not run", results[1].Error);

        time.Advance(TimeSpan.FromSeconds(5));
        Assert.Equal(TaskStatuses.Completed, (await harness.SubmitAndWaitAsync(ExternalTask.Create("charge-4", SessionLane.Execute, new { }).DedupedBy("order-42", TimeSpan.FromSeconds(5)), Wait)).Status);
    }
}
