using System.Text.Json;

namespace LaneQueue.Tests.Unit;

/// <summary>
/// Recurring schedules without a broker: due times (cron with seconds and a time zone across both DST changes, fixed
/// intervals counted from the epoch), the catch-up decision (grace, skip, once, a resume), firing ids, the folding of the
/// schedule commands, and validation errors naming the field.
/// </summary>
public class ScheduleUnitTests
{
    static TaskSchedule Cron(string cron, string? zone = null, string? catchUp = null) =>
        new() { Id = "s", Cron = cron, TimeZone = zone, Lane = SessionLane.Query, CatchUp = catchUp };

    static TaskSchedule Every(long ms, string? catchUp = null) => new() { Id = "s", IntervalMs = ms, Lane = SessionLane.Query, CatchUp = catchUp };

    static DateTimeOffset Utc(string text) => DateTimeOffset.Parse(text, System.Globalization.CultureInfo.InvariantCulture);

    [Fact]
    public void Cron_with_seconds_gives_the_next_due_time_strictly_after()
    {
        var s = Cron("*/10 * * * * *");
        Assert.Equal(Utc("2026-01-01T00:00:10Z"), TaskSchedules.NextDue(s, Utc("2026-01-01T00:00:00Z")));
        Assert.Equal(Utc("2026-01-01T00:00:10Z"), TaskSchedules.NextDue(s, Utc("2026-01-01T00:00:09.999Z")));
        // 5 fields: from minutes, at second 0.
        Assert.Equal(Utc("2026-01-01T02:00:00Z"), TaskSchedules.NextDue(Cron("0 2 * * *"), Utc("2026-01-01T01:59:59Z")));
    }

    [Fact]
    public void Cron_in_a_time_zone_follows_its_clock_across_both_DST_changes()
    {
        // 02:30 every day in Berlin. 2026-03-29: clocks jump 02:00 -> 03:00 (02:30 does not exist): fired when the clock
        // jumps, 03:00 CEST = 01:00 UTC; the day after at 02:30 CEST = 00:30 UTC.
        var s = Cron("0 30 2 * * *", "Europe/Berlin");
        Assert.Equal(Utc("2026-03-28T01:30:00Z"), TaskSchedules.NextDue(s, Utc("2026-03-28T00:00:00Z"))); // CET, UTC+1
        Assert.Equal(Utc("2026-03-29T01:00:00Z"), TaskSchedules.NextDue(s, Utc("2026-03-28T12:00:00Z")));
        Assert.Equal(Utc("2026-03-30T00:30:00Z"), TaskSchedules.NextDue(s, Utc("2026-03-29T01:00:00Z")));
        // 2026-10-25: clocks go back 03:00 -> 02:00 (02:30 happens twice): fired once, at the first 02:30 (CEST, 00:30 UTC).
        Assert.Equal(Utc("2026-10-25T00:30:00Z"), TaskSchedules.NextDue(s, Utc("2026-10-24T12:00:00Z")));
        Assert.Equal(Utc("2026-10-26T01:30:00Z"), TaskSchedules.NextDue(s, Utc("2026-10-25T00:30:00Z")));
        // In UTC (the default) nothing moves.
        Assert.Equal(Utc("2026-03-29T02:30:00Z"), TaskSchedules.NextDue(Cron("0 30 2 * * *"), Utc("2026-03-28T12:00:00Z")));
    }

    [Fact]
    public void An_interval_counts_from_the_epoch_so_every_consumer_computes_the_same_due_times()
    {
        Assert.Equal(Utc("2026-01-01T12:00:01Z"), TaskSchedules.NextDue(Every(1000), Utc("2026-01-01T12:00:00.300Z")));
        Assert.Equal(Utc("2026-01-01T12:00:02Z"), TaskSchedules.NextDue(Every(1000), Utc("2026-01-01T12:00:01Z")));
        Assert.Equal(Utc("2026-01-01T12:01:30Z"), TaskSchedules.NextDue(Every(90_000), Utc("2026-01-01T12:00:00Z")));
        Assert.Equal(5, TaskSchedules.DueBetween(Every(1000), Utc("2026-01-01T12:00:00Z"), Utc("2026-01-01T12:00:05Z")).Count);
    }

    [Fact]
    public void Missed_due_times_within_the_grace_fire_each_and_older_ones_follow_the_policy()
    {
        var now = Utc("2026-01-01T12:10:00Z");
        var grace = TimeSpan.FromSeconds(30);
        var lastFired = Utc("2026-01-01T12:00:00Z"); // the monitor was away for 10 minutes

        // Every 10 s: 12:09:40, :50, 12:10:00 are within the grace: fired each. Older ones: skip = none, once = 12:09:30 only.
        var skip = TaskSchedules.DueToFire(Every(10_000), lastFired, now, grace);
        Assert.Equal([Utc("2026-01-01T12:09:40Z"), Utc("2026-01-01T12:09:50Z"), Utc("2026-01-01T12:10:00Z")], skip);
        var once = TaskSchedules.DueToFire(Every(10_000, TaskSchedule.CatchUpOnce), lastFired, now, grace);
        Assert.Equal([Utc("2026-01-01T12:09:30Z"), Utc("2026-01-01T12:09:40Z"), Utc("2026-01-01T12:09:50Z"), Utc("2026-01-01T12:10:00Z")], once);

        // A daily cron missed yesterday: skip fires nothing, once fires the missed one.
        var daily = Cron("0 0 2 * * *");
        Assert.Empty(TaskSchedules.DueToFire(daily, Utc("2025-12-31T02:00:00Z"), now, grace));
        Assert.Equal([Utc("2026-01-01T02:00:00Z")], TaskSchedules.DueToFire(daily with { CatchUp = TaskSchedule.CatchUpOnce }, Utc("2025-12-31T02:00:00Z"), now, grace));

        // Nothing missed: only what is due now; nothing again right after.
        Assert.Equal([Utc("2026-01-01T12:10:00Z")], TaskSchedules.DueToFire(Every(10_000, TaskSchedule.CatchUpOnce), Utc("2026-01-01T12:09:50Z"), now, grace));
        Assert.Empty(TaskSchedules.DueToFire(Every(10_000, TaskSchedule.CatchUpOnce), now, now.AddSeconds(5), grace));
    }

    [Fact]
    public void After_a_resume_the_due_times_of_the_pause_follow_the_policy_even_within_the_grace()
    {
        var lastFired = Utc("2026-01-01T12:00:00Z");
        var resumedAt = Utc("2026-01-01T12:00:10.500Z");
        var now = resumedAt.AddMilliseconds(600);
        // Paused 12:00:00..12:00:10.5 (every second): skip fires none of them, only 12:00:11 which came after the resume.
        Assert.Equal([Utc("2026-01-01T12:00:11Z")], TaskSchedules.DueToFire(Every(1000), lastFired, now, TimeSpan.FromSeconds(30), resumedAt));
        // once: the latest paused one (12:00:10), then 12:00:11.
        Assert.Equal([Utc("2026-01-01T12:00:10Z"), Utc("2026-01-01T12:00:11Z")],
            TaskSchedules.DueToFire(Every(1000, TaskSchedule.CatchUpOnce), lastFired, now, TimeSpan.FromSeconds(30), resumedAt));
    }

    [Fact]
    public void A_firing_is_a_task_with_a_deterministic_id_and_that_id_as_its_dedup_key()
    {
        var s = Every(1000) with { Id = "report", CommandType = "echo", Payload = TaskJson.ParseElement("""{"n":1}"""), SessionId = "sess" };
        var task = TaskSchedules.FiringTask(s, Utc("2026-03-29T01:00:00Z"));
        Assert.Equal("report:20260329T010000Z", task.Id);
        Assert.Equal(task.Id, task.DedupKey);
        Assert.Equal(TaskSchedules.FiringDedupWindowMs, task.DedupWindowMs);
        Assert.Equal(("echo", "sess", SessionLane.Query), (task.CommandType, task.SessionId, task.Lane));
        Assert.Equal("""{"n":1}""", JsonSerializer.Serialize(task.Payload));
        Assert.Equal("report:20260329T010000.500Z", TaskSchedules.FiringId("report", Utc("2026-03-29T01:00:00.5Z")));
        TaskParser.Validate(task);
    }

    [Theory]
    [InlineData("cron", """{"id":"s","cron":"61 * * * * *","lane":"query"}""", "is not a cron expression")]
    [InlineData("cron", """{"id":"s","cron":"* * *","lane":"query"}""", "has 3 fields")]
    [InlineData("time_zone", """{"id":"s","cron":"* * * * * *","time_zone":"Mars/Olympus","lane":"query"}""", "'Mars/Olympus' is not a known time zone")]
    [InlineData("time_zone", """{"id":"s","interval_ms":5000,"time_zone":"UTC","lane":"query"}""", "belongs to a cron expression")]
    [InlineData("interval_ms", """{"id":"s","interval_ms":999,"lane":"query"}""", "999 must be from 1000 (1 s)")]
    [InlineData("interval_ms", """{"id":"s","lane":"query"}""", "missing: give a cron expression")]
    [InlineData("cron", """{"id":"s","cron":"* * * * * *","interval_ms":1000,"lane":"query"}""", "and interval_ms are both given")]
    [InlineData("id", """{"id":"-bad","interval_ms":1000,"lane":"query"}""", "may only hold letters")]
    [InlineData("catch_up", """{"id":"s","interval_ms":1000,"lane":"query","catch_up":"all"}""", "'all' is not 'skip' or 'once'")]
    public void Validation_names_the_field(string field, string json, string problem)
    {
        var schedule = JsonSerializer.Deserialize<TaskSchedule>(json, TaskJson.Options)!;
        var ex = Assert.Throws<InvalidScheduleException>(() => TaskSchedules.Validate(schedule));
        Assert.Equal(field, ex.Field);
        Assert.Contains(problem, ex.Message);
        Assert.StartsWith($"schedule {field}: ", ex.Message);
    }

    [Fact]
    public void Validation_applies_the_task_rules_to_the_payload_and_the_id_length()
    {
        var big = Every(1000) with { Payload = TaskJson.ParseElement($$"""{"s":"{{new string('x', 2000)}}"}""") };
        var ex = Assert.Throws<InvalidScheduleException>(() => TaskSchedules.Validate(big, maxPayloadBytes: 1024));
        Assert.Equal("payload", ex.Field);
        Assert.Contains("over the limit of 1024 bytes", ex.Message);
        var longId = Every(1000) with { Id = new string('a', TaskSchedules.MaxIdLength + 1) };
        Assert.Equal("id", Assert.Throws<InvalidScheduleException>(() => TaskSchedules.Validate(longId)).Field);
        Assert.Equal("lane", Assert.Throws<InvalidScheduleException>(() => TaskSchedules.Validate(Every(1000) with { Lane = (SessionLane)7 })).Field);
        TaskSchedules.Validate(Cron("0 0 2 * * *", "Europe/Berlin", TaskSchedule.CatchUpOnce));
    }

    [Fact]
    public void The_table_keeps_the_newest_command_per_schedule_whatever_the_order_and_repeats()
    {
        var t0 = Utc("2026-01-01T00:00:00Z");
        var put = new FleetCommand { Command = FleetCommand.SchedulePut, ScheduleId = "s", Schedule = Every(1000), At = t0 };
        var pause = new FleetCommand { Command = FleetCommand.SchedulePause, ScheduleId = "s", At = t0.AddSeconds(1) };
        var resume = new FleetCommand { Command = FleetCommand.ScheduleResume, ScheduleId = "s", At = t0.AddSeconds(2) };
        var remove = new FleetCommand { Command = FleetCommand.ScheduleRemove, ScheduleId = "s", At = t0.AddSeconds(3) };
        var table = new ScheduleTable();
        Assert.True(table.Apply(put));
        Assert.False(table.Apply(put)); // the same command through the other stream
        Assert.True(table.Apply(pause));
        Assert.True(table.Get("s")!.Paused);
        Assert.True(table.Apply(resume));
        Assert.Equal((false, t0.AddSeconds(2), t0), (table.Get("s")!.Paused, table.Get("s")!.ChangedAt, table.Get("s")!.AddedAt));
        Assert.False(table.Apply(pause)); // older than the resume
        Assert.True(table.Apply(remove));
        Assert.Null(table.Get("s"));
        Assert.False(table.Apply(put)); // older than the remove
        Assert.Empty(table.Current);
        Assert.False(table.Apply(new FleetCommand { Command = FleetCommand.Pause, Lane = "query" })); // not a schedule command
        Assert.True(table.Apply(put with { At = t0.AddSeconds(4) })); // added again
        Assert.Single(table.Current);
    }
}
