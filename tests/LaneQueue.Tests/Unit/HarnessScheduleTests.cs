using System.Collections.Concurrent;
using System.Text.Json;
using LaneQueue.Consumer.Testing;
using LaneQueue.Tests.Faults;
using Microsoft.Extensions.Time.Testing;

namespace LaneQueue.Tests.Unit;

/// <summary>
/// Recurring schedules on the harness, on a fake clock: each firing is a task with the fleet monitor's id, dedup key, lane,
/// command type, payload and session (the same <see cref="ScheduleFirings"/> code), run through the handler; cron with seconds
/// in a time zone; pause and resume with the catch-up policy; remove; the catch-up after a jump of the clock; a double firing.
/// </summary>
public class HarnessScheduleTests
{
    static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);
    static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>A harness on a fake clock at <paramref name="start"/>, started, whose <c>report</c> handler records the tasks it ran.</summary>
    static (LaneQueueTestHarness Harness, FakeTimeProvider Time, ConcurrentQueue<ExternalTask> Ran) Create(DateTimeOffset start)
    {
        var time = new FakeTimeProvider(start);
        var harness = new LaneQueueTestHarness(time: time);
        var ran = new ConcurrentQueue<ExternalTask>();
        harness.Consumer.AddHandler("report", context =>
        {
            ran.Enqueue(context.Task);
            return Task.FromResult<object?>(new { kind = context.Task.Payload.GetProperty("kind").GetString() });
        });
        harness.Start();
        return (harness, time, ran);
    }

    static TaskSchedule Every10s(string id, string? catchUp = null) => new()
    {
        Id = id,
        IntervalMs = 10_000,
        Lane = SessionLane.Execute,
        CommandType = "report",
        Payload = TaskJson.ParseElement("""{"kind":"daily","n":7}"""),
        SessionId = "reports",
        CatchUp = catchUp,
    };

    /// <summary>Two schedules every 10 s: <c>skip</c> (the default catch-up policy) and <c>once</c>.</summary>
    static async Task AddSkipAndOnceAsync(LaneQueueTestHarness harness)
    {
        await harness.AddScheduleAsync(Every10s("skip"));
        await harness.AddScheduleAsync(Every10s("once", TaskSchedule.CatchUpOnce));
    }

    /// <summary>Advances the clock one second at a time (each step within the 30 s grace, as a monitor ticking through it).</summary>
    static void Step(FakeTimeProvider time, int seconds)
    {
        for (var i = 0; i < seconds; i++)
            time.Advance(TimeSpan.FromSeconds(1));
    }

    /// <summary>The firing ids (<c>&lt;schedule&gt;:yyyyMMddTHHmmssZ</c>) of <paramref name="scheduleId"/> for due times T0 + seconds.</summary>
    static string[] Ids(string scheduleId, params int[] seconds) =>
        [.. seconds.Select(s => scheduleId + ":" + T0.AddSeconds(s).UtcDateTime.ToString("yyyyMMdd'T'HHmmss'Z'", System.Globalization.CultureInfo.InvariantCulture))];

    static string[] StartedOf(LaneQueueTestHarness harness, string scheduleId) =>
        [.. harness.Started.Where(s => s.TaskId.StartsWith(scheduleId + ":", StringComparison.Ordinal)).Select(s => s.TaskId)];

    [Fact]
    public async Task A_schedule_every_10_s_fires_6_tasks_over_a_minute_with_the_monitors_ids_and_payloads_run_by_the_handler()
    {
        var (harness, time, ran) = Create(T0);
        await using var _ = harness;
        await harness.AddScheduleAsync(Every10s("tick"));

        Step(time, 60);
        await harness.WhenIdleAsync(Wait);

        var expected = Ids("tick", 10, 20, 30, 40, 50, 60);
        Assert.Equal(expected, harness.Started.Select(s => s.TaskId));
        Assert.Equal(expected, ran.Select(t => t.Id).Order(StringComparer.Ordinal)); // handlers run side by side: any order
        Assert.All(harness.Results, r => Assert.Equal(TaskStatuses.Completed, r.Status));
        Assert.All(harness.Results, r => Assert.Equal("daily", r.Result.GetProperty("kind").GetString()));
        foreach (var task in ran)
        {
            // As the handler reads it from the wire: the fleet monitor's task for that due time.
            Assert.Equal((task.Id, TaskSchedules.FiringDedupWindowMs), (task.DedupKey, task.DedupWindowMs));
            Assert.Equal((SessionLane.Execute, "report", "reports"), (task.Lane, task.CommandType, task.SessionId));
            Assert.Equal("""{"kind":"daily","n":7}""", JsonSerializer.Serialize(task.Payload));
        }
        // The firing made on the fleet for the same due time is the same task.
        var fleet = TaskSchedules.FiringTask(Every10s("tick"), T0.AddSeconds(10));
        var first = ran.Single(t => t.Id == fleet.Id);
        Assert.Equal((fleet.DedupKey, fleet.SessionId, fleet.CommandType), (first.DedupKey, first.SessionId, first.CommandType));

        var listed = Assert.Single(await harness.ListSchedulesAsync());
        Assert.Equal((T0, false, T0.AddSeconds(70)), (listed.AddedAt, listed.Paused, listed.NextDue));
        Assert.Equal((T0.AddSeconds(60), expected[^1], "test-harness"), (listed.LastFiring!.Due, listed.LastFiring.TaskId, listed.LastFiring.Consumer));
    }

    [Fact]
    public async Task A_cron_schedule_with_seconds_fires_at_its_time_zones_clock()
    {
        // 09:30:00 to 09:30:45 every 15 s in Berlin, which in July is UTC+2: 07:30 UTC. The clock starts at 09:29:50 there.
        var start = new DateTimeOffset(2026, 7, 1, 7, 29, 50, TimeSpan.Zero);
        var (harness, time, ran) = Create(start);
        await using var _ = harness;
        await harness.AddScheduleAsync(new TaskSchedule
        {
            Id = "standup",
            Cron = "*/15 30 9 * * *",
            TimeZone = "Europe/Berlin",
            Lane = SessionLane.Query,
            CommandType = "report",
            Payload = TaskJson.ParseElement("""{"kind":"standup"}"""),
        });

        Step(time, 120); // to 09:31:50 Berlin time
        await harness.WhenIdleAsync(Wait);

        Assert.Equal(["standup:20260701T073000Z", "standup:20260701T073015Z", "standup:20260701T073030Z", "standup:20260701T073045Z"],
            harness.Started.Select(s => s.TaskId));
        Assert.Equal(4, ran.Count);
        Assert.All(ran, t => Assert.Equal(SessionLane.Query, t.Lane));
        Assert.Equal(new DateTimeOffset(2026, 7, 2, 7, 30, 0, TimeSpan.Zero), Assert.Single(await harness.ListSchedulesAsync()).NextDue);
    }

    [Fact]
    public async Task Pause_stops_firings_and_resume_restarts_them_with_the_catch_up_policy_deciding_the_paused_due_times()
    {
        var (harness, time, _) = Create(T0);
        await using var _h = harness;
        await AddSkipAndOnceAsync(harness);
        Step(time, 25);
        await harness.PauseScheduleAsync("skip");
        await harness.PauseScheduleAsync("once");
        Assert.All(await harness.ListSchedulesAsync(), s => Assert.True(s.Paused && s.NextDue is null));

        Step(time, 70); // paused from T0+25 s to T0+95 s: due times 30 to 90 missed
        await harness.WhenIdleAsync(Wait);
        Assert.Equal(Ids("skip", 10, 20), StartedOf(harness, "skip"));
        Assert.Equal(Ids("once", 10, 20), StartedOf(harness, "once"));

        await harness.ResumeScheduleAsync("skip");
        await harness.ResumeScheduleAsync("once");
        await harness.WhenIdleAsync(Wait);
        // As the fleet monitor: skip fires none of the paused due times, once fires the latest (T0+90 s) at the resume.
        Assert.Equal(Ids("skip", 10, 20), StartedOf(harness, "skip"));
        Assert.Equal(Ids("once", 10, 20, 90), StartedOf(harness, "once"));

        Step(time, 10);
        await harness.WhenIdleAsync(Wait);
        Assert.Equal(Ids("skip", 10, 20, 100), StartedOf(harness, "skip"));
        Assert.Equal(Ids("once", 10, 20, 90, 100), StartedOf(harness, "once"));
    }

    [Fact]
    public async Task A_removed_schedule_fires_no_more_and_added_again_fires_from_then()
    {
        var (harness, time, _) = Create(T0);
        await using var _h = harness;
        await harness.AddScheduleAsync(Every10s("tick"));
        Step(time, 25);
        await harness.RemoveScheduleAsync("tick");
        Assert.Empty(await harness.ListSchedulesAsync());

        Step(time, 60);
        await harness.WhenIdleAsync(Wait);
        Assert.Equal(Ids("tick", 10, 20), StartedOf(harness, "tick"));

        await harness.AddScheduleAsync(Every10s("tick", TaskSchedule.CatchUpOnce)); // at T0+85 s: nothing of the time it was gone
        Step(time, 10);
        await harness.WhenIdleAsync(Wait);
        Assert.Equal(Ids("tick", 10, 20, 90), StartedOf(harness, "tick"));
    }

    [Fact]
    public async Task After_a_jump_of_an_hour_skip_fires_the_due_times_within_the_grace_and_once_also_the_latest_older_one()
    {
        var (harness, time, _) = Create(T0);
        await using var _h = harness;
        await AddSkipAndOnceAsync(harness);
        Step(time, 15);

        time.Advance(TimeSpan.FromHours(1)); // to T0+3615 s in one step: the monitor was away for an hour
        await harness.WhenIdleAsync(Wait);

        // Younger than the 30 s grace (after T0+3585 s): 3590, 3600, 3610 each, for both. Older: skip none, once the latest (3580).
        Assert.Equal(Ids("skip", 10, 3590, 3600, 3610), StartedOf(harness, "skip"));
        Assert.Equal(Ids("once", 10, 3580, 3590, 3600, 3610), StartedOf(harness, "once"));
        Assert.Equal(T0.AddSeconds(3620), (await harness.ListSchedulesAsync())[0].NextDue);
    }

    [Fact]
    public async Task A_second_firing_of_the_same_due_time_is_answered_duplicate_and_runs_once()
    {
        var (harness, time, ran) = Create(T0);
        await using var _h = harness;
        var schedule = Every10s("tick");
        await harness.AddScheduleAsync(schedule);
        Step(time, 10);
        await harness.WhenIdleAsync(Wait);

        // What a new monitor sends after a crash between a firing's task and its record: the same task (id and dedup key) again.
        var again = await harness.SubmitAndWaitAsync(TaskSchedules.FiringTask(schedule, T0.AddSeconds(10)), Wait);

        Assert.Equal(TaskStatuses.Duplicate, again.Status);
        Assert.Contains("'tick:20260101T000010Z'", again.Error, StringComparison.Ordinal);
        Assert.Equal(Ids("tick", 10), ran.Select(t => t.Id));
        Assert.Equal([TaskStatuses.Completed, TaskStatuses.Duplicate], harness.Results.Select(r => r.Status));
    }

    [Fact]
    public async Task On_the_system_clock_a_schedule_fires_by_itself()
    {
        await using var harness = new LaneQueueTestHarness();
        harness.Start();
        var fired = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var watch = await harness.WatchEventsAsync(e =>
        {
            if (harness.Results.Count(r => r.Status == TaskStatuses.Completed) >= 2)
                fired.TrySetResult();
            return Task.CompletedTask;
        }, "command.completed.#");
        await harness.AddScheduleAsync(new TaskSchedule { Id = "beat", IntervalMs = 1000, Lane = SessionLane.Query, CommandType = "echo" });

        await fired.Task.WaitAsync(Wait); // two due times, one second apart, with nobody advancing anything
        var ids = harness.Results.Take(2).Select(r => ResultDue(r.TaskId)).ToList();
        Assert.Equal(TimeSpan.FromSeconds(1), ids[1] - ids[0]);
    }

    static DateTimeOffset ResultDue(string taskId) =>
        DateTimeOffset.ParseExact(taskId[(taskId.IndexOf(':', StringComparison.Ordinal) + 1)..], "yyyyMMdd'T'HHmmss'Z'",
            System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeUniversal);

    [Fact]
    public async Task Schedules_are_validated_as_the_producer_validates_them()
    {
        await using var harness = new LaneQueueTestHarness(o => o.MaxPayloadBytes = 1024);
        var big = Every10s("big") with { Payload = TaskJson.ParseElement($$"""{"kind":"{{new string('x', 2000)}}"}""") };
        Assert.Equal("payload", (await Assert.ThrowsAsync<InvalidScheduleException>(() => harness.AddScheduleAsync(big))).Field);
        Assert.Equal("time_zone", (await Assert.ThrowsAsync<InvalidScheduleException>(() =>
            harness.AddScheduleAsync(Every10s("tz") with { IntervalMs = null, Cron = "* * * * * *", TimeZone = "Mars/Olympus" }))).Field);
        Assert.Equal("id", (await Assert.ThrowsAsync<InvalidScheduleException>(() => harness.PauseScheduleAsync("-bad"))).Field);
        Assert.Empty(await harness.ListSchedulesAsync());
    }

    /// <summary>The example of docs/testing.md ("Recurring schedules"), as written there.</summary>
    [Fact]
    public async Task The_docs_example_runs_as_written()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        await using var harness = new LaneQueueTestHarness(time: time);                // schedules fire on this clock
        harness.Consumer.AddHandler("report", _ => Task.FromResult<object?>(new { done = true }));
        harness.Start();

        await harness.AddScheduleAsync(new TaskSchedule { Id = "report", IntervalMs = 10_000, Lane = SessionLane.Execute, CommandType = "report" });
        for (var i = 0; i < 60; i++)
            time.Advance(TimeSpan.FromSeconds(1));                                      // steps under the 30 s grace: each due time fires
        await harness.WhenIdleAsync(TimeSpan.FromSeconds(10));

        Assert.Equal(6, harness.Results.Count(r => r.Status == TaskStatuses.Completed));
        Assert.Equal("report:20260101T000010Z", harness.Started[0].TaskId);         // <schedule>:<due time, UTC>
    }

    [Fact]
    public void The_docs_example_is_the_body_of_the_test_above()
    {
        var docs = File.ReadAllText(Path.Combine(Repo.Root, "docs", "testing.md"));
        var section = docs.IndexOf("\n## Recurring schedules\n", StringComparison.Ordinal);
        Assert.True(section >= 0, "docs/testing.md has no '## Recurring schedules' section");
        var example = docs[section..].Split("```csharp\n")[1].Split("```")[0];
        var source = File.ReadAllText(Path.Combine(Repo.Root, "tests", "LaneQueue.Tests", "Unit", "HarnessScheduleTests.cs"));
        var body = source.Split("The_docs_example_runs_as_written()\n    {\n")[1].Split("\n    }\n")[0];
        var unindented = string.Join('\n', body.Split('\n').Select(line => line.StartsWith("        ", StringComparison.Ordinal) ? line[8..] : line));
        Assert.Equal(example.Trim(), unindented.Trim());
    }
}
