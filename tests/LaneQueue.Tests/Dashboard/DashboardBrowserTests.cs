using LaneQueue.Consumer;
using LaneQueue.Tests.Broker;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace LaneQueue.Tests.Dashboard;

/// <summary>
/// The dashboard in a real browser (Debian's chromium through Playwright), served by the standalone
/// <c>lanequeue dashboard --enable-actions</c> against a real broker and an in-process consumer.
/// </summary>
[Collection(BrokerCollection.Name)]
public sealed class DashboardBrowserTests(BrokerFixture broker, Chromium chromium) : IAsyncLifetime, IClassFixture<Chromium>
{
    TestFleet _fleet = null!;
    volatile bool _flakyFails = true;

    public async Task InitializeAsync()
    {
        _fleet = new TestFleet(await broker.CreateVhostAsync());
        await _fleet.StartConsumerAsync("dash-browser", o =>
        {
            o.HeartbeatIntervalMs = 300;
            o.Queue = o.Queue with { RetryPolicy = new RetryPolicy { Strategy = RetryStrategy.None } };
        }, h => h.AddHandler("flaky", _ => _flakyFails
            ? throw new InvalidOperationException("flaky: the downstream service is down")
            : Task.FromResult<object?>(new { ok = true })));
    }

    public async Task DisposeAsync() => await _fleet.DisposeAsync();

    [Fact]
    public async Task The_lanes_page_shows_the_four_lanes_with_live_counts_and_pauses_and_resumes_a_lane()
    {
        await using var dashboard = await DashboardServer.StandaloneAsync(_fleet.Vhost.Url, enableActions: true, managementUrl: broker.Management.BaseAddress!.ToString());
        var page = await chromium.NewPageAsync();
        await page.GotoAsync(dashboard.Root);
        await Expect(page.Locator("#lanes tbody tr")).ToHaveCountAsync(4);
        await Expect(page.Locator("#lanes tbody tr td.lane-name")).ToHaveTextAsync(["control", "query", "execute", "generate"]);
        var generate = page.Locator("tr[data-lane=generate]");
        await Expect(generate.Locator("[data-col=paused]")).ToHaveTextAsync("no");

        await generate.Locator("button[data-action=pause]").ClickAsync();
        await Expect(generate.Locator("[data-col=paused]")).ToContainTextAsync("paused on 1 of 1");
        await Expect(generate.Locator("[data-col=paused]")).ToContainTextAsync("paused by operator");
        Assert.True(_fleet.Hosts[0].IsPaused(SessionLane.Generate));

        // Counts change on the page without a reload while tasks wait and run.
        foreach (var i in Enumerable.Range(1, 6))
            await _fleet.Producer.SubmitTaskAsync(ExternalTask.Create($"gen-{i}", SessionLane.Generate, new { ms = 300 }, "sleep")
                with { CreatedAt = DateTimeOffset.UtcNow.AddMinutes(i == 1 ? -5 : 0) }); // the first one created 5 minutes ago
        await _fleet.Producer.SubmitAndWaitAsync(ExternalTask.Create("query-1", SessionLane.Query), TimeSpan.FromSeconds(30));
        await Expect(generate.Locator("[data-col=ready]")).ToHaveTextAsync("6");
        await Expect(generate.Locator("[data-col=oldest]")).ToHaveTextAsync(new System.Text.RegularExpressions.Regex("^(5|6) min$")); // from the management API
        await Expect(page.Locator("tr[data-lane=query] [data-col=completed]")).ToHaveTextAsync("1");
        await Chromium.ScreenshotAsync(page, "lanes");

        await Expect(generate.Locator("button[data-action=pause]")).ToHaveTextAsync("Resume");
        await generate.Locator("button[data-action=pause]").ClickAsync();
        await Expect(generate.Locator("[data-col=completed]")).ToHaveTextAsync("6");
        await Expect(generate.Locator("[data-col=ready]")).ToHaveTextAsync("0");
        await Expect(generate.Locator("[data-col=paused]")).ToHaveTextAsync("no");
        Assert.False(_fleet.Hosts[0].IsPaused(SessionLane.Generate));

        await page.Locator("nav a[data-page=fleet]").ClickAsync();
        await Expect(page.Locator("tr[data-consumer=dash-browser]")).ToContainTextAsync("generate 0/");
        await Chromium.ScreenshotAsync(page, "fleet");
    }

    [Fact]
    public async Task The_lanes_page_shows_each_sessions_running_and_waiting_tasks_and_the_lanes_session_limit()
    {
        // A consumer of its own (SessionLimits:Generate=1) in a vhost of its own, its generate tasks held until released.
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var fleet = new TestFleet(await broker.CreateVhostAsync());
        await fleet.StartConsumerAsync("dash-sessions", o =>
        {
            o.HeartbeatIntervalMs = 300;
            o.Queue = o.Queue with { GenerateMaxConcurrency = 4 };
            o.SessionLimits[SessionLane.Generate] = 1;
        }, h => h.AddHandler("hold", async context =>
        {
            await release.Task.WaitAsync(context.CancellationToken);
            return null;
        }));
        try
        {
            await using var dashboard = await DashboardServer.StandaloneAsync(fleet.Vhost.Url, enableActions: false);
            const string Tagged = "chat <b>42</b>"; // session ids are user input: shown as text, never as HTML
            foreach (var i in Enumerable.Range(1, 3))
                await fleet.Producer.SubmitTaskAsync(ExternalTask.Create($"a-{i}", SessionLane.Generate, null, "hold") with { SessionId = Tagged });
            foreach (var i in Enumerable.Range(1, 2))
                await fleet.Producer.SubmitTaskAsync(ExternalTask.Create($"b-{i}", SessionLane.Generate, null, "hold") with { SessionId = "chat-7" });

            var page = await chromium.NewPageAsync();
            await page.GotoAsync(dashboard.Root);
            var generate = page.Locator("[data-sessions-lane=generate]");
            await Expect(generate.Locator("[data-col=session-limit]")).ToHaveTextAsync("sequential");
            await Expect(generate.Locator("[data-col=session-shards]")).ToHaveTextAsync("none");
            var rows = generate.Locator("table.sessions tbody tr");
            await Expect(rows.Locator("[data-col=session]")).ToHaveTextAsync([Tagged, "chat-7"]);
            await Expect(rows.Nth(0).Locator("[data-col=running]")).ToHaveTextAsync("1");
            await Expect(rows.Nth(0).Locator("[data-col=waiting]")).ToHaveTextAsync("2");
            await Expect(rows.Nth(1).Locator("[data-col=running]")).ToHaveTextAsync("1");
            await Expect(rows.Nth(1).Locator("[data-col=waiting]")).ToHaveTextAsync("1");
            await Expect(generate.Locator("b")).ToHaveCountAsync(0);
            // The lanes table: nothing ready at the broker, the three waiting tasks held by the consumer.
            await Expect(page.Locator("tr[data-lane=generate] [data-col=ready]")).ToHaveTextAsync("0");
            await Expect(page.Locator("tr[data-lane=generate] [data-col=held]")).ToHaveTextAsync("3");
            var query = page.Locator("[data-sessions-lane=query]");
            await Expect(query.Locator("[data-col=session-limit]")).ToHaveTextAsync("none");
            await Expect(query.Locator("[data-col=no-sessions]")).ToBeVisibleAsync();
            await Chromium.ScreenshotAsync(page, "lanes-sessions");

            // Released, the waiting tasks run one per session and the view empties without a reload.
            release.TrySetResult();
            await Expect(rows).ToHaveCountAsync(0);
            await Expect(generate.Locator("[data-col=no-sessions]")).ToBeVisibleAsync();
            await Expect(page.Locator("tr[data-lane=generate] [data-col=held]")).ToHaveTextAsync("0");
        }
        finally
        {
            release.TrySetResult();
        }
    }

    [Fact]
    public async Task A_task_is_looked_up_with_its_timeline_and_dead_letters_are_redriven_and_purged_from_the_page()
    {
        await using var dashboard = await DashboardServer.StandaloneAsync(_fleet.Vhost.Url, enableActions: true);
        await _fleet.Producer.SubmitAndWaitAsync(ExternalTask.Create("flaky-1", SessionLane.Execute, new { order = 42 }, "flaky"), TimeSpan.FromSeconds(30));
        await _fleet.Producer.SubmitAndWaitAsync(ExternalTask.Create("doomed-1", SessionLane.Execute, new { message = "never works" }, "fail"), TimeSpan.FromSeconds(30));
        await TestVhost.EventuallyAsync(async () => await _fleet.Vhost.ReadyAsync(TestVhost.DeadLetters(SessionLane.Execute)) == 2, "both dead-lettered");

        var page = await chromium.NewPageAsync();
        await page.GotoAsync(dashboard.Root);
        await page.Locator("#lookup-id").FillAsync("flaky-1");
        await page.Locator("#lookup-id").PressAsync("Enter");
        await Expect(page.Locator("#task-status")).ToHaveTextAsync("failed");
        await Expect(page.Locator("#task-payload")).ToContainTextAsync("\"order\": 42"); // from the history's started event

        await page.Locator("nav a[data-page=lanes]").ClickAsync();
        var dead = page.Locator("tr[data-lane=execute] [data-col=dead] a");
        await Expect(dead).ToHaveTextAsync("2");
        await dead.ClickAsync();
        var letter = page.Locator("#dead-letters tr[data-task=flaky-1]");
        await Expect(letter).ToContainTextAsync("flaky: the downstream service is down");
        await Chromium.ScreenshotAsync(page, "dead-letters");

        _flakyFails = false;
        await letter.Locator("button[data-action=redrive]").ClickAsync();
        await Expect(letter).ToHaveCountAsync(0);
        await Expect(page.Locator("#dead-letters tr[data-task=doomed-1]")).ToContainTextAsync("never works"); // only the one asked for moved
        await page.Locator("button[data-action=purge]").ClickAsync();
        await Expect(page.Locator("#no-dead-letters")).ToBeVisibleAsync();
        Assert.Equal(0u, await _fleet.Vhost.ReadyAsync(TestVhost.DeadLetters(SessionLane.Execute)));
        await TestVhost.EventuallyAsync(async () => (await _fleet.Producer.GetTaskHistoryAsync("flaky-1")).Final?.Status == TaskStatuses.Completed,
            "the redriven task completed");

        await page.Locator("#lookup-id").FillAsync("flaky-1");
        await page.Locator("#lookup-id").PressAsync("Enter");
        await Expect(page.Locator("#task-status")).ToHaveTextAsync("completed");
        await Expect(page.Locator("#timeline tr[data-event=dead_lettered]")).ToHaveCountAsync(1);
        await Expect(page.Locator("#timeline tr[data-event=dead_lettered]")).ToContainTextAsync("downstream service is down");
        await Expect(page.Locator("#timeline tr[data-event=completed]")).ToHaveCountAsync(1);
        await Expect(page.Locator("#task-result")).ToContainTextAsync("\"ok\": true");
        await Expect(page.Locator("#task-payload")).ToContainTextAsync("\"order\": 42");
        await Chromium.ScreenshotAsync(page, "task");

        await page.Locator("#lookup-id").FillAsync("never-submitted");
        await page.Locator("#lookup-id").PressAsync("Enter");
        await Expect(page.Locator("#task-missing")).ToBeVisibleAsync();
    }

    [Fact]
    public async Task The_task_page_shows_a_running_tasks_progress_live_and_every_report_in_order()
    {
        await using var dashboard = await DashboardServer.StandaloneAsync(_fleet.Vhost.Url, enableActions: false);
        var page = await chromium.NewPageAsync();
        await page.GotoAsync(dashboard.Root);
        await _fleet.Producer.SubmitTaskAsync(ExternalTask.Create("slow-1", SessionLane.Generate, new { ms = 6000 }, "sleep"));
        await page.Locator("#lookup-id").FillAsync("slow-1");
        await page.Locator("#lookup-id").PressAsync("Enter");

        // While it runs: a bar below 100 %, moved by the page's own refresh (no reload).
        var bar = page.Locator("#task-progress progress");
        await Expect(bar).ToBeVisibleAsync(new() { Timeout = 30_000 });
        var first = double.Parse((await bar.GetAttributeAsync("value"))!, System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(first, 0.1, 99.9);
        Assert.Equal("started", await page.Locator("#task-status").TextContentAsync());
        await Chromium.ScreenshotAsync(page, "task-progress");
        await Expect(page.Locator("#task-status")).ToHaveTextAsync("completed", new() { Timeout = 30_000 });
        await Expect(bar).ToHaveAttributeAsync("value", "100");
        await Expect(page.Locator("#task-progress")).ToContainTextAsync("100% slept 6000 of 6000 ms");

        var reports = await page.Locator("#timeline tr[data-event=progress] td:last-child").AllTextContentsAsync();
        Assert.True(reports.Count >= 5, $"{reports.Count} progress rows");
        var percents = reports.Select(r => double.Parse(r[..r.IndexOf('%')], System.Globalization.CultureInfo.InvariantCulture)).ToList();
        Assert.Equal(percents.Order(), percents);
        Assert.Equal(100, percents[^1]);
    }

    [Fact]
    public async Task The_scheduled_page_shows_next_and_last_firing_and_pauses_resumes_and_removes_a_schedule()
    {
        await using var dashboard = await DashboardServer.StandaloneAsync(_fleet.Vhost.Url, enableActions: true);
        await _fleet.Producer.AddScheduleAsync(new TaskSchedule { Id = "tick", IntervalMs = 1000, Lane = SessionLane.Query, CommandType = "echo" });
        await _fleet.Producer.AddScheduleAsync(new TaskSchedule { Id = "nightly", Cron = "0 30 2 * * *", TimeZone = "Europe/Berlin", Lane = SessionLane.Execute });
        await TestVhost.EventuallyAsync(async () => (await _fleet.Producer.ListSchedulesAsync()).Any(s => s.LastFiring is not null), "tick fired");

        var page = await chromium.NewPageAsync();
        await page.GotoAsync(dashboard.Root + "#/scheduled");
        var tick = page.Locator("#schedules tr[data-schedule=tick]");
        await Expect(tick).ToContainTextAsync("every 1 s");
        await Expect(tick.Locator("[data-col=state]")).ToHaveTextAsync("active");
        await Expect(tick.Locator("[data-col=last]")).ToContainTextAsync("tick:");
        await Expect(tick.Locator("[data-col=next]")).Not.ToHaveTextAsync("–");
        await Expect(page.Locator("#schedules tr[data-schedule=nightly]")).ToContainTextAsync("cron 0 30 2 * * * Europe/Berlin");
        await Chromium.ScreenshotAsync(page, "scheduled");

        await tick.Locator("button[data-action=pause]").ClickAsync();
        await Expect(tick.Locator("[data-col=state]")).ToHaveTextAsync("paused");
        await Expect(tick.Locator("[data-col=next]")).ToHaveTextAsync("–");
        Assert.True((await _fleet.Producer.ListSchedulesAsync()).Single(s => s.Schedule.Id == "tick").Paused);
        await tick.Locator("button[data-action=resume]").ClickAsync();
        await Expect(tick.Locator("[data-col=state]")).ToHaveTextAsync("active");
        await tick.Locator("button[data-action=remove]").ClickAsync();
        await Expect(tick).ToHaveCountAsync(0);
        Assert.Equal(["nightly"], (await _fleet.Producer.ListSchedulesAsync()).Select(s => s.Schedule.Id));
    }

    [Fact]
    public async Task The_scheduled_page_shows_delayed_tasks_due_soon_counting_down_and_cancels_one()
    {
        await using var dashboard = await DashboardServer.StandaloneAsync(_fleet.Vhost.Url, enableActions: true, managementUrl: broker.Management.BaseAddress!.ToString());
        await _fleet.Producer.SubmitTaskAsync(ExternalTask.Create("later-1", SessionLane.Execute).After(TimeSpan.FromMinutes(5)));
        await _fleet.Producer.SubmitTaskAsync(ExternalTask.Create("cancel-me", SessionLane.Query).After(TimeSpan.FromSeconds(10)));
        await _fleet.Producer.SubmitTaskAsync((ExternalTask.Create("next-1", SessionLane.Generate) with { SessionId = "sess-7" }).After(TimeSpan.FromSeconds(50)));

        var page = await chromium.NewPageAsync();
        await page.GotoAsync(dashboard.Root + "#/scheduled");
        var rows = page.Locator("#delayed-tasks tbody tr");
        await Expect(rows).ToHaveCountAsync(3);
        await Expect(rows.Locator("td:first-child")).ToHaveTextAsync(["cancel-me", "next-1", "later-1"]);
        await Expect(page.Locator("[data-col=delayed-total]")).ToContainTextAsync("3 delayed task(s) waiting");
        var next = page.Locator("#delayed-tasks tr[data-task=next-1]");
        await Expect(next.Locator("[data-col=lane]")).ToHaveTextAsync("generate");
        await Expect(next.Locator("[data-col=session]")).ToHaveTextAsync("sess-7");
        await Expect(page.Locator("#delayed-tasks tr[data-task=later-1] [data-col=in]")).ToHaveTextAsync(new System.Text.RegularExpressions.Regex("^in (4|5) min$"));
        var countdown = next.Locator("[data-col=in]");
        await Expect(countdown).ToHaveTextAsync(new System.Text.RegularExpressions.Regex(@"^in [1-4]\d\.\d s$"));
        var first = await countdown.TextContentAsync();
        await Expect(countdown).Not.ToHaveTextAsync(first!); // counts down without a reload
        await Chromium.ScreenshotAsync(page, "scheduled-delayed");

        await page.Locator("#delayed-tasks tr[data-task=cancel-me] button[data-action=cancel]").ClickAsync();
        await TestVhost.EventuallyAsync(async () => (await _fleet.Producer.GetTaskHistoryAsync("cancel-me")).Final?.Status == TaskStatuses.Cancelled,
            "cancel-me answered cancelled when it came due");
        await Expect(page.Locator("#delayed-tasks tr[data-task=cancel-me]")).ToHaveCountAsync(0); // it left the tree
        await Expect(page.Locator("[data-col=delayed-total]")).ToContainTextAsync("2 delayed task(s) waiting");
    }
}
