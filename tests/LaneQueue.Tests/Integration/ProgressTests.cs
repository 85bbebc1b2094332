using System.Collections.Concurrent;
using System.CommandLine;
using System.Diagnostics;
using LaneQueue.Cli;
using LaneQueue.Consumer.Testing;
using LaneQueue.Tests.Broker;

namespace LaneQueue.Tests.Integration;

/// <summary>
/// Progress from a running task (<see cref="TaskContext.ReportProgressAsync(double, string?)"/>): in the event stream, the
/// history, <c>WatchTaskAsync</c> and the CLI, in order, throttled per task.
/// </summary>
[Collection(BrokerCollection.Name)]
public class ProgressTests(BrokerFixture broker)
{
    static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    static double Percent(TaskEvent e) => e.ProgressValue!.Value.GetProperty("percent").GetDouble();

    [Fact]
    public async Task A_one_second_sleep_reports_progress_in_order_in_the_events_the_history_the_watch_and_the_cli()
    {
        await using var fleet = new TestFleet(await broker.CreateVhostAsync());
        await fleet.StartConsumerAsync("progress-1");
        var live = new ConcurrentQueue<TaskEvent>();
        await using var subscription = await fleet.Producer.WatchEventsAsync(e =>
        {
            live.Enqueue(e);
            return Task.CompletedTask;
        }, "command.progress.#");

        // The watch starts before the task exists: it sees every event live, then the result.
        var watched = new List<TaskEvent>();
        var watch = fleet.Producer.WatchTaskAsync("sleep-1", e =>
        {
            watched.Add(e);
            return Task.CompletedTask;
        }, Wait);
        await Task.Delay(300); // the watch's subscriptions are in place (it reads the history first)
        var result = await fleet.Producer.SubmitAndWaitAsync(ExternalTask.Create("sleep-1", SessionLane.Generate, new { ms = 1000 }, "sleep"), Wait);
        Assert.True(result.Success);

        var watchedResult = await watch;
        Assert.Equal(TaskStatuses.Completed, watchedResult.Status);
        var watchedProgress = watched.Where(e => e.Event == TaskEvent.Progress).Select(Percent).ToList();
        Assert.True(watchedProgress.Count >= 5, $"the watch saw {watchedProgress.Count} progress events");
        Assert.Equal(watchedProgress.Order(), watchedProgress);
        Assert.Equal(100, watchedProgress[^1]);
        Assert.True(TaskEvent.Started == watched[0].Event && TaskEvent.Completed == watched[^1].Event, "watched: " + string.Join(", ", watched.Select(e => e.Event)));

        await TestVhost.EventuallyAsync(() => Task.FromResult(live.Any(e => e.TaskId == "sleep-1" && Percent(e) == 100)), "the last report in the event stream");
        var streamed = live.Where(e => e.TaskId == "sleep-1").ToList();
        Assert.True(streamed.Count >= 5, $"{streamed.Count} progress events");
        Assert.All(streamed, e => Assert.Equal(SessionLane.Generate, e.Lane));
        Assert.Equal(streamed.Select(Percent).Order(), streamed.Select(Percent));
        Assert.Equal("slept 1000 of 1000 ms", streamed[^1].ProgressValue!.Value.GetProperty("message").GetString());

        // The history keeps them, in order, between the start and the end.
        TaskHistory history = null!;
        await TestVhost.EventuallyAsync(async () => (history = await fleet.Producer.GetTaskHistoryAsync("sleep-1")).Events.Count(e => e.Event == TaskEvent.Progress) == streamed.Count,
            "every progress event in the history");
        var names = history.Events.Select(e => e.Event).ToList();
        Assert.True(TaskEvent.Started == names[0] && TaskEvent.Completed == names[^1], "history: " + string.Join(", ", names));
        Assert.All(names.Skip(1).SkipLast(1), n => Assert.Equal(TaskEvent.Progress, n));
        Assert.Equal(streamed.Select(Percent), history.Events.Where(e => e.Event == TaskEvent.Progress).Select(Percent));

        // The CLI: task show lists the reports; task watch of a finished task prints its timeline and result at once.
        var (code, output) = await CliAsync(fleet.Vhost.Url, "task", "show", "--id", "sleep-1");
        Assert.Equal(0, code);
        Assert.Contains("command.progress", output);
        Assert.Contains("100% slept 1000 of 1000 ms", output);
        (code, output) = await CliAsync(fleet.Vhost.Url, "task", "watch", "--id", "sleep-1", "--timeout", "10");
        Assert.Equal(0, code);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Count(l => l.Contains(" progress ", StringComparison.Ordinal)) >= 5, output);
        Assert.Contains("100% slept 1000 of 1000 ms", output);
        Assert.Contains("sleep-1: completed on progress-1 after 1 attempt(s)", lines[^1]);
    }

    [Fact]
    public async Task Task_watch_follows_a_running_task_live_and_exits_with_its_status()
    {
        await using var fleet = new TestFleet(await broker.CreateVhostAsync());
        await fleet.StartConsumerAsync("progress-2", o => o.Queue = o.Queue with { RetryPolicy = new RetryPolicy { Strategy = RetryStrategy.None } });
        var cli = CliAsync(fleet.Vhost.Url, "task", "watch", "--id", "sleep-2", "--timeout", "60", "--json");
        await Task.Delay(1000); // the CLI connects and listens
        await fleet.Producer.SubmitTaskAsync(ExternalTask.Create("sleep-2", SessionLane.Execute, new { ms = 1500 }, "sleep"));
        var (code, output) = await cli.WaitAsync(Wait);
        Assert.Equal(0, code);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var events = lines.SkipLast(1).Select(l => TaskJson.Deserialize<TaskEvent>(System.Text.Encoding.UTF8.GetBytes(l))).ToList();
        var progress = events.Where(e => e.Event == TaskEvent.Progress).Select(Percent).ToList();
        Assert.True(progress.Count >= 5, output);
        Assert.Equal(progress.Order(), progress);
        Assert.Equal(100, progress[^1]);
        var result = TaskJson.Deserialize<ExternalTaskResult>(System.Text.Encoding.UTF8.GetBytes(lines[^1]));
        Assert.Equal(TaskStatuses.Completed, result.Status);

        // A failed task: the watch ends with the task-failed exit code.
        var failing = CliAsync(fleet.Vhost.Url, "task", "watch", "--id", "fail-2", "--timeout", "60");
        await Task.Delay(1000);
        await fleet.Producer.SubmitTaskAsync(ExternalTask.Create("fail-2", SessionLane.Execute, new { message = "nope" }, "fail"));
        (code, output) = await failing.WaitAsync(Wait);
        Assert.Equal(5, code);
        Assert.Contains("fail-2: failed", output);
    }

    [Fact]
    public async Task A_handler_reporting_in_a_tight_loop_publishes_at_most_ten_a_second_and_its_last_report()
    {
        await using var fleet = new TestFleet(await broker.CreateVhostAsync());
        var calls = 0L;
        var ran = TimeSpan.Zero;
        await fleet.StartConsumerAsync("progress-3", handlers: h => h.AddHandler("chatty", async context =>
        {
            var clock = Stopwatch.StartNew();
            var i = 0L;
            while (clock.Elapsed < TimeSpan.FromSeconds(1))
            {
                await context.ReportProgressAsync(new { step = ++i });
                if (i % 1000 == 0)
                    await Task.Yield();
            }
            calls = i;
            ran = clock.Elapsed;
            return new { reports = i };
        }));
        var live = new ConcurrentQueue<TaskEvent>();
        await using var subscription = await fleet.Producer.WatchEventsAsync(e =>
        {
            live.Enqueue(e);
            return Task.CompletedTask;
        }, "command.progress.#");
        var result = await fleet.Producer.SubmitAndWaitAsync(ExternalTask.Create("chatty-1", SessionLane.Execute, new { }, "chatty"), Wait);
        Assert.True(result.Success);
        await TestVhost.EventuallyAsync(() => Task.FromResult(live.Any(e => e.ProgressValue!.Value.GetProperty("step").GetInt64() == calls)),
            "the handler's last report arrives");

        // The control, measured in the same run: the handler did report more than 10,000 times a second.
        Assert.True(calls / ran.TotalSeconds > 10_000, $"the handler reported only {calls} times in {ran.TotalSeconds:0.00} s");
        var sent = live.Select(e => e.ProgressValue!.Value.GetProperty("step").GetInt64()).ToList();
        var limit = (int)Math.Ceiling(ran.TotalSeconds / ProgressReports.Interval.TotalSeconds) + 1; // one per interval, +1: the last one
        Assert.InRange(sent.Count, 5, limit);
        Assert.Equal(sent.Order(), sent);
        Assert.Equal(calls, sent[^1]);
    }

    [Fact]
    public async Task The_test_harness_publishes_progress_through_the_same_throttle_and_history()
    {
        await using var harness = new LaneQueueTestHarness();
        harness.Consumer.AddBuiltInHandlers();
        harness.Start();
        var watched = new List<TaskEvent>();
        var watch = harness.WatchTaskAsync("h-2", e =>
        {
            watched.Add(e);
            return Task.CompletedTask;
        }, Wait);
        await harness.SubmitTaskAsync(ExternalTask.Create("h-2", SessionLane.Generate, new { ms = 600 }, "sleep"));
        var done = await watch;
        Assert.True(done.Success, done.Error);
        var progress = watched.Where(e => e.Event == TaskEvent.Progress).Select(Percent).ToList();
        Assert.True(progress.Count >= 3, $"{progress.Count} progress events");
        Assert.Equal(100, progress[^1]);
        Assert.Equal(progress.Order(), progress);
        var history = await harness.GetTaskHistoryAsync("h-2");
        Assert.Equal(progress, history.Events.Where(e => e.Event == TaskEvent.Progress).Select(Percent));
    }

    static async Task<(int Code, string Output)> CliAsync(string url, params string[] args)
    {
        var output = new StringWriter();
        var code = await ProducerCli.RunAsync([.. args, "--url", url], new InvocationConfiguration { Output = output, Error = output });
        return (code, output.ToString());
    }
}
