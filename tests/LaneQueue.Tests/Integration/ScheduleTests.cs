using System.Collections.Concurrent;
using System.Text.Json;
using LaneQueue.Tests.Broker;
using LaneQueue.Tests.Faults;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using Xunit.Abstractions;

namespace LaneQueue.Tests.Integration;

/// <summary>Every result published on a vhost (<c>lanequeue.results</c>, bound <c>#</c>), for counting firings.</summary>
internal sealed class ResultCollector : IAsyncDisposable
{
    readonly IConnection _connection;
    public ConcurrentQueue<ExternalTaskResult> Results { get; } = new();

    ResultCollector(IConnection connection) => _connection = connection;

    public static async Task<ResultCollector> StartAsync(string url)
    {
        var connection = await BrokerConnection.ConnectAsync(url, "schedule-test-results");
        var collector = new ResultCollector(connection);
        var channel = await connection.CreateChannelAsync();
        await BrokerTopology.DeclareAsync(channel);
        var queue = (await channel.QueueDeclareAsync("", durable: false, exclusive: true, autoDelete: true)).QueueName;
        await channel.QueueBindAsync(queue, BrokerNames.ResultsExchange, "#");
        var consumer = new AsyncEventingBasicConsumer(channel);
        consumer.ReceivedAsync += (_, delivery) =>
        {
            collector.Results.Enqueue(TaskJson.Deserialize<ExternalTaskResult>(delivery.Body.Span));
            return Task.CompletedTask;
        };
        await channel.BasicConsumeAsync(queue, autoAck: true, consumer);
        return collector;
    }

    /// <summary>The completed results of a schedule's firings.</summary>
    public List<ExternalTaskResult> Completed(string scheduleId) =>
        [.. Results.Where(r => r.TaskId.StartsWith(scheduleId + ":", StringComparison.Ordinal) && r.Status == TaskStatuses.Completed)];

    public int Answered(string scheduleId, string status) =>
        Results.Count(r => r.TaskId.StartsWith(scheduleId + ":", StringComparison.Ordinal) && r.Status == status);

    /// <summary>The due time in a firing's id (<c>&lt;schedule&gt;:yyyyMMddTHHmmssZ</c>).</summary>
    public static DateTimeOffset DueOf(string taskId) =>
        DateTimeOffset.ParseExact(taskId[(taskId.LastIndexOf(':') + 1)..], ["yyyyMMdd'T'HHmmss'Z'", "yyyyMMdd'T'HHmmss'.'fff'Z'"],
            System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeUniversal);

    public ValueTask DisposeAsync() => _connection.DisposeAsync();
}

/// <summary>Recurring schedules on a real broker: exactly once per due time across a kill -9 of the firing consumer; pause, resume, remove, list; the CLI.</summary>
[Collection(BrokerCollection.Name)]
public class ScheduleTests(BrokerFixture broker, ITestOutputHelper output)
{
    [Fact]
    public async Task A_schedule_every_second_fires_60_times_in_60_s_once_each_across_a_kill_9_of_the_firing_consumer()
    {
        await using var vhost = await broker.CreateVhostAsync();
        var names = new[] { "sched-a", "sched-b", "sched-c" };
        var consumers = new List<ConsumerProcess>();
        try
        {
            consumers.AddRange(await Task.WhenAll(names.Select(n => ConsumerProcess.StartAsync(vhost.Url, n, startTimeoutSeconds: 120))));
            await using var results = await ResultCollector.StartAsync(vhost.Url);
            await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = vhost.Url });
            const string TakeOver = "Schedules: this consumer fires them now";
            await ConsumerKillTests.WaitUntilAsync(() => consumers.Count(c => c.Output.Contains(TakeOver, StringComparison.Ordinal)) == 1,
                TimeSpan.FromSeconds(60), "one consumer is the fleet monitor and fires the schedules");
            var firing = consumers.Single(c => c.Output.Contains(TakeOver, StringComparison.Ordinal));

            await producer.AddScheduleAsync(new TaskSchedule { Id = "tick", IntervalMs = 1000, Lane = SessionLane.Query, CommandType = "echo" });
            var added = (await producer.ListSchedulesAsync()).Single();
            var firstDue = TaskSchedules.NextDue(added.Schedule, added.AddedAt)!.Value;
            var lastDue = firstDue.AddSeconds(59);

            // kill -9 of the firing consumer 20.5 s after the first due time (between two due times).
            await Task.Delay(firstDue.AddSeconds(20.5) - DateTimeOffset.UtcNow);
            var firedBeforeKill = results.Completed("tick").Count;
            var killedAt = DateTimeOffset.UtcNow;
            firing.KillHard();
            output.WriteLine($"killed the firing consumer {firing.Name} at {killedAt:O} after {firedBeforeKill} completed firings");

            // Removed half a second after the 60th due time; the results of the last firings arrive within a few seconds.
            await Task.Delay(lastDue.AddSeconds(0.5) - DateTimeOffset.UtcNow);
            await producer.RemoveScheduleAsync("tick");
            await Task.Delay(TimeSpan.FromSeconds(4));

            var completed = results.Completed("tick");
            var byDue = completed.GroupBy(r => ResultCollector.DueOf(r.TaskId)).OrderBy(g => g.Key).ToList();
            var twice = byDue.Count(g => g.Count() > 1);
            var firings = byDue.Count;
            var missing = Enumerable.Range(0, 60).Select(i => firstDue.AddSeconds(i)).Count(due => byDue.All(g => g.Key != due));
            var starts = byDue.Select(g => g.Min(r => r.StartedAt)).Order().ToList();
            var gaps = starts.Zip(starts.Skip(1), (a, b) => (b - a).TotalSeconds).ToList();
            var largestGap = gaps.Max();
            var lateness = byDue.Select(g => (g.Min(r => r.StartedAt) - g.Key).TotalMilliseconds).Order().ToList();
            var firstAfterKill = starts.First(s => s > killedAt);
            var newMonitor = consumers.Where(c => c != firing).SingleOrDefault(c => c.Output.Contains(TakeOver, StringComparison.Ordinal))?.Name ?? "?";
            var duplicates = results.Answered("tick", TaskStatuses.Duplicate);
            var report = $"{firings} firings of 60 due times ({missing} missing, {twice} completed twice, {duplicates} answered duplicate); " +
                $"largest gap between starts {largestGap:0.000} s; first start after the kill {(firstAfterKill - killedAt).TotalMilliseconds:0} ms after it on the new monitor {newMonitor}; " +
                $"start after due p50 {lateness[lateness.Count / 2]:0} ms, max {lateness[^1]:0} ms";
            output.WriteLine(report);
            Evidence.Write("schedule-handover", new
            {
                Scenario = "a schedule every 1 s (interval_ms 1000, lane query, echo) on 3 consumer processes for 60 s; kill -9 of the firing consumer (the fleet monitor) 20.5 s after the first due time",
                DueTimes = 60,
                Firings = firings,
                MissingDueTimes = missing,
                DueTimesCompletedTwice = twice,
                AnsweredDuplicate = duplicates,
                FiredBeforeKill = firedBeforeKill,
                LargestGapBetweenStartsSeconds = Math.Round(largestGap, 3),
                FirstStartAfterKillMs = Math.Round((firstAfterKill - killedAt).TotalMilliseconds),
                StartAfterDueP50Ms = Math.Round(lateness[lateness.Count / 2]),
                StartAfterDueMaxMs = Math.Round(lateness[^1]),
                KilledConsumer = firing.Name,
                NewMonitor = newMonitor,
            }, report);

            Assert.True(Math.Abs(firings - 60) <= 1, report);
            Assert.True(twice == 0, report);
            Assert.True(missing <= 1, report);
            Assert.True(largestGap <= 2.0, report);
        }
        finally
        {
            foreach (var consumer in consumers)
                await consumer.DisposeAsync();
        }
    }

    [Fact]
    public async Task Pause_stops_firings_resume_restarts_them_per_the_catch_up_policy_remove_stops_them_and_list_shows_next_and_last()
    {
        await using var fleet = new TestFleet(await broker.CreateVhostAsync());
        await fleet.StartConsumerAsync("sched-1");
        await fleet.StartConsumerAsync("sched-2");
        await using var results = await ResultCollector.StartAsync(fleet.Vhost.Url);
        var producer = fleet.Producer;
        await producer.AddScheduleAsync(new TaskSchedule { Id = "skip", IntervalMs = 1000, Lane = SessionLane.Query, CommandType = "echo" });
        await producer.AddScheduleAsync(new TaskSchedule { Id = "once", IntervalMs = 1000, Lane = SessionLane.Query, CommandType = "echo", CatchUp = TaskSchedule.CatchUpOnce });
        await TestVhost.EventuallyAsync(() => Task.FromResult(results.Completed("skip").Count >= 3 && results.Completed("once").Count >= 3), "3 firings of each", 30);

        // list: next due in the next second, last firing the latest one.
        var listed = await producer.ListSchedulesAsync();
        Assert.Equal(["once", "skip"], listed.Select(s => s.Schedule.Id));
        var skip = listed.Single(s => s.Schedule.Id == "skip");
        Assert.False(skip.Paused);
        var now = DateTimeOffset.UtcNow;
        Assert.InRange(skip.NextDue!.Value, now.AddSeconds(-1), now.AddSeconds(1.5));
        Assert.NotNull(skip.LastFiring);
        Assert.StartsWith("skip:", skip.LastFiring!.TaskId);
        Assert.InRange(skip.LastFiring.Due, now.AddSeconds(-2), now);

        // pause both for 4 s.
        await producer.PauseScheduleAsync("skip");
        await producer.PauseScheduleAsync("once");
        var pausedAt = DateTimeOffset.UtcNow;
        await Task.Delay(TimeSpan.FromSeconds(4));
        var paused = await producer.ListSchedulesAsync();
        Assert.All(paused, s => Assert.True(s.Paused && s.NextDue is null, $"{s.Schedule.Id} is listed paused without a next due time"));
        Assert.DoesNotContain(results.Completed("skip").Concat(results.Completed("once")), r => ResultCollector.DueOf(r.TaskId) > pausedAt.AddSeconds(1));

        await producer.ResumeScheduleAsync("skip");
        await producer.ResumeScheduleAsync("once");
        var resumedAt = DateTimeOffset.UtcNow;
        await Task.Delay(TimeSpan.FromSeconds(3));
        // Fired again after the resume; of the due times of the pause, skip fired none and once fired the latest one only.
        bool InPause(ExternalTaskResult r) => ResultCollector.DueOf(r.TaskId) is var due && due > pausedAt.AddSeconds(1) && due < resumedAt.AddSeconds(-0.2);
        Assert.True(results.Completed("skip").Count(r => ResultCollector.DueOf(r.TaskId) > resumedAt) >= 2, "skip fires again after the resume");
        Assert.True(results.Completed("once").Count(r => ResultCollector.DueOf(r.TaskId) > resumedAt) >= 2, "once fires again after the resume");
        Assert.DoesNotContain(results.Completed("skip"), InPause);
        var caughtUp = Assert.Single(results.Completed("once"), InPause);
        Assert.InRange(ResultCollector.DueOf(caughtUp.TaskId), resumedAt.AddSeconds(-1.3), resumedAt);

        // remove: no firing after it.
        await producer.RemoveScheduleAsync("skip");
        await producer.RemoveScheduleAsync("once");
        var removedAt = DateTimeOffset.UtcNow;
        await Task.Delay(TimeSpan.FromSeconds(3));
        Assert.DoesNotContain(results.Completed("skip").Concat(results.Completed("once")), r => ResultCollector.DueOf(r.TaskId) > removedAt.AddSeconds(0.5));
        Assert.Empty(await producer.ListSchedulesAsync());
        var all = results.Completed("skip").Concat(results.Completed("once")).ToList();
        Assert.Equal(all.Count, all.Select(r => r.TaskId).Distinct().Count());
    }

    [Fact]
    public async Task The_cli_adds_lists_pauses_and_removes_a_schedule_and_names_bad_input()
    {
        await using var vhost = await broker.CreateVhostAsync();
        var url = vhost.Url;
        var (code, text) = await CliAsync("schedule", "add", "--id", "nightly", "--cron", "0 30 2 * * *", "--tz", "Europe/Berlin", "--lane", "execute",
            "--command-type", "echo", "--payload", """{"report":"daily"}""", "--catch-up", "once", "--url", url);
        Assert.True(code == 0, text);
        Assert.Contains("schedule nightly added; first due", text);

        (code, text) = await CliAsync("schedule", "list", "--json", "--url", url);
        Assert.True(code == 0, text);
        var listed = JsonDocument.Parse(text).RootElement;
        Assert.Equal(1, listed.GetArrayLength());
        var nightly = listed[0];
        Assert.Equal("nightly", nightly.GetProperty("id").GetString());
        Assert.Equal("Europe/Berlin", nightly.GetProperty("time_zone").GetString());
        Assert.Equal("once", nightly.GetProperty("catch_up").GetString());
        Assert.False(nightly.GetProperty("paused").GetBoolean());
        var next = nightly.GetProperty("next_due").GetDateTimeOffset();
        Assert.Equal(30, TimeZoneInfo.ConvertTime(next, TimeZoneInfo.FindSystemTimeZoneById("Europe/Berlin")).Minute);
        Assert.False(nightly.TryGetProperty("last_firing", out var last) && last.ValueKind != JsonValueKind.Null, "no firing yet");

        (code, text) = await CliAsync("schedule", "pause", "--id", "nightly", "--url", url);
        Assert.True(code == 0, text);
        (code, text) = await CliAsync("schedule", "list", "--url", url);
        Assert.Contains("nightly", text);
        Assert.Contains("paused", text);
        (code, text) = await CliAsync("schedule", "remove", "--id", "nightly", "--url", url);
        Assert.True(code == 0, text);
        (code, text) = await CliAsync("schedule", "list", "--url", url);
        Assert.Contains("(no schedules)", text);
        (code, text) = await CliAsync("schedule", "pause", "--id", "nightly", "--url", url);
        Assert.Equal(2, code);
        Assert.Contains("--id 'nightly': no such schedule", text);

        foreach (var (args, expected) in new (string[] Args, string Expected)[]
        {
            (["--cron", "61 * * * * *"], "error: --cron: '61 * * * * *' is not a cron expression"),
            (["--cron", "0 * * * * *", "--tz", "Mars/Olympus"], "error: --tz: 'Mars/Olympus' is not a known time zone"),
            (["--every", "500ms"], "error: --every: 500 must be from 1000 (1 s)"),
            (["--every", "soon"], "error: --every 'soon' must be a whole number and a unit"),
            ([], "error: --every: missing: give a cron expression"),
            (["--every", "1s", "--cron", "* * * * * *"], "error: --cron: and interval_ms are both given"),
            (["--every", "1s", "--catch-up", "all"], "error: --catch-up: 'all' is not 'skip' or 'once'"),
            (["--every", "1s", "--payload", "{"], "error: --payload is not valid JSON"),
        })
        {
            (code, text) = await CliAsync(["schedule", "add", "--id", "bad", "--lane", "query", .. args, "--url", url]);
            Assert.True(code == 2, $"{string.Join(' ', args)}: exit {code}: {text}");
            Assert.Contains(expected, text);
        }
        (code, text) = await CliAsync("schedule", "add", "--id", "bad", "--lane", "nowhere", "--every", "1s", "--url", url);
        Assert.Equal(2, code);
        Assert.Contains("--lane 'nowhere' is not a lane", text);
    }

    static async Task<(int Code, string Output)> CliAsync(params string[] args)
    {
        var output = new StringWriter();
        var code = await LaneQueue.Cli.ProducerCli.RunAsync(args, new System.CommandLine.InvocationConfiguration { Output = output, Error = output });
        return (code, output.ToString());
    }
}
