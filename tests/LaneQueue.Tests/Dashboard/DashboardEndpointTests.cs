using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using LaneQueue.Cli;
using LaneQueue.Tests.Broker;

namespace LaneQueue.Tests.Dashboard;

/// <summary>The dashboard's JSON endpoints against a real broker and consumer: what they read, who may act, antiforgery.</summary>
[Collection(BrokerCollection.Name)]
public sealed class DashboardEndpointTests(BrokerFixture broker) : IAsyncLifetime
{
    TestFleet _fleet = null!;

    public async Task InitializeAsync()
    {
        _fleet = new TestFleet(await broker.CreateVhostAsync());
        await _fleet.StartConsumerAsync("dash-endpoints", o => o.HeartbeatIntervalMs = 300);
    }

    public async Task DisposeAsync() => await _fleet.DisposeAsync();

    [Fact]
    public async Task Stats_list_the_four_lanes_with_their_ready_counts_and_the_consumer_online()
    {
        await using var dashboard = await DashboardServer.EmbeddedAsync(_fleet.Vhost.Url, allow: null);
        await _fleet.Producer.PauseLaneAsync(SessionLane.Generate);
        await TestVhost.EventuallyAsync(() => Task.FromResult(_fleet.Hosts[0].IsPaused(SessionLane.Generate)), "generate paused");
        foreach (var i in Enumerable.Range(1, 3))
            await _fleet.Producer.SubmitTaskAsync(ExternalTask.Create($"held-{i}", SessionLane.Generate));

        await TestVhost.EventuallyAsync(async () =>
        {
            var stats = await dashboard.StatsAsync();
            var generate = DashboardServer.Lane(stats, "generate");
            return generate.GetProperty("pending").GetInt64() == 3 && generate.GetProperty("paused_on").GetInt32() == 1
                && stats.GetProperty("snapshot").GetProperty("consumers").GetArrayLength() == 1;
        }, "the dashboard shows generate paused with 3 ready and the consumer online");
        var last = await dashboard.StatsAsync();
        Assert.Equal(["control", "query", "execute", "generate"],
            last.GetProperty("snapshot").GetProperty("lanes").EnumerateArray().Select(l => l.GetProperty("stats").GetProperty("lane").GetString()));
        Assert.Equal("dash-endpoints", last.GetProperty("snapshot").GetProperty("consumers")[0].GetProperty("heartbeat").GetProperty("consumer").GetString());
        // the version the consumer runs, as packed (Directory.Build.props), for the fleet page
        Assert.Equal(typeof(LaneQueue.Consumer.ILaneQueueBus).Assembly.GetName().Version!.ToString(3),
            last.GetProperty("snapshot").GetProperty("consumers")[0].GetProperty("heartbeat").GetProperty("version").GetString());
        Assert.Contains("paused by operator", DashboardServer.Lane(last, "generate").GetProperty("paused_reasons").EnumerateArray().Select(r => r.GetString()));
        Assert.True(last.GetProperty("snapshot").GetProperty("lanes")[3].GetProperty("depth").EnumerateArray().Any(d => d.GetInt64() == 3), "the depth history holds the samples");
        Assert.False(last.GetProperty("actions").GetBoolean());
    }

    [Fact]
    public async Task With_the_management_api_each_lane_shows_how_long_its_oldest_task_has_waited()
    {
        await using var dashboard = await DashboardServer.EmbeddedAsync(_fleet.Vhost.Url, allow: null, managementUrl: broker.Management.BaseAddress!.ToString());
        await _fleet.Producer.PauseLaneAsync(SessionLane.Generate);
        await TestVhost.EventuallyAsync(() => Task.FromResult(_fleet.Hosts[0].IsPaused(SessionLane.Generate)), "generate paused");
        // created an hour ago (a producer whose clock says so): the head's timestamp is the task's created_at
        await _fleet.Producer.SubmitTaskAsync(ExternalTask.Create("old-1", SessionLane.Generate) with { CreatedAt = DateTimeOffset.UtcNow.AddHours(-1) });
        await _fleet.Producer.SubmitTaskAsync(ExternalTask.Create("new-1", SessionLane.Generate));

        System.Text.Json.JsonElement generate = default;
        await TestVhost.EventuallyAsync(async () =>
        {
            var lanes = (await dashboard.StatsAsync()).GetProperty("snapshot").GetProperty("lanes");
            generate = lanes.EnumerateArray().Single(l => l.GetProperty("stats").GetProperty("lane").GetString() == "generate");
            return OldestWait(generate) is not null; // the management API lags by its statistics interval
        }, "generate's oldest wait reported");
        Assert.InRange(OldestWait(generate)!.Value, 3600, 3600 + 600);
        var query = (await dashboard.StatsAsync()).GetProperty("snapshot").GetProperty("lanes").EnumerateArray()
            .Single(l => l.GetProperty("stats").GetProperty("lane").GetString() == "query");
        Assert.Null(OldestWait(query)); // nothing waiting

        // Without a management URL the wait is unknown, not guessed.
        await using var plain = await DashboardServer.EmbeddedAsync(_fleet.Vhost.Url, allow: null);
        Assert.All((await plain.StatsAsync()).GetProperty("snapshot").GetProperty("lanes").EnumerateArray(),
            l => Assert.Null(OldestWait(l)));
    }

    /// <summary>A lane view's oldest wait in seconds; null when unknown (left out of the JSON).</summary>
    static double? OldestWait(System.Text.Json.JsonElement lane) =>
        lane.TryGetProperty("oldest_wait_s", out var wait) && wait.ValueKind == System.Text.Json.JsonValueKind.Number ? wait.GetDouble() : null;

    [Fact]
    public async Task A_pending_external_task_is_listed_until_its_worker_completes_it()
    {
        await using var dashboard = await DashboardServer.EmbeddedAsync(_fleet.Vhost.Url, allow: null);
        await _fleet.Producer.SetLaneHandlerAsync(SessionLane.Execute, TaskHandlerMode.External, timeoutMs: 60_000);
        await TestVhost.EventuallyAsync(async () => DashboardServer.Lane(await dashboard.StatsAsync(), "execute").GetProperty("handler_mode").GetString() == "external",
            "execute in external mode");
        var result = await _fleet.Producer.WatchResultAsync("ext-dash-1");
        await _fleet.Producer.SubmitTaskAsync(ExternalTask.Create("ext-dash-1", SessionLane.Execute, new { job = "resize" }));

        System.Text.Json.JsonElement listed = default;
        await TestVhost.EventuallyAsync(async () =>
        {
            var tasks = (await dashboard.StatsAsync()).GetProperty("snapshot").GetProperty("external_tasks");
            listed = tasks.EnumerateArray().FirstOrDefault(t => t.GetProperty("task_id").GetString() == "ext-dash-1");
            return listed.ValueKind == System.Text.Json.JsonValueKind.Object;
        }, "ext-dash-1 listed as pending external work");
        Assert.Equal("execute", listed.GetProperty("lane").GetString());
        Assert.Equal("dash-endpoints", listed.GetProperty("consumer").GetString());
        Assert.True(listed.GetProperty("deadline").GetDateTimeOffset() > listed.GetProperty("announced_at").GetDateTimeOffset());

        await _fleet.Producer.CompleteExternalTaskAsync(new ExternalCompletion { TaskId = "ext-dash-1", Success = true });
        Assert.True((await result.WaitAsync(TimeSpan.FromSeconds(30))).Success);
        await TestVhost.EventuallyAsync(async () =>
            (await dashboard.StatsAsync()).GetProperty("snapshot").GetProperty("external_tasks").GetArrayLength() == 0, "the pending list empties");
    }

    [Fact]
    public async Task Without_an_actions_policy_every_action_answers_403_and_the_page_offers_none()
    {
        await using var dashboard = await DashboardServer.EmbeddedAsync(_fleet.Vhost.Url, allow: null);
        var (field, token, actions) = await dashboard.PageAsync();
        Assert.False(actions);
        foreach (var action in new[] { "pause", "resume", "mode", "dead-letters/redrive", "dead-letters/purge" })
        {
            using var response = await dashboard.PostAsync($"api/lanes/query/{action}", new Dictionary<string, string> { [field] = token, ["mode"] = "external" });
            Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
            Assert.Contains("read-only", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
        await Task.Delay(1000); // a pause sent anyway would reach the in-process consumer well within this
        Assert.False(_fleet.Hosts[0].IsPaused(SessionLane.Query));
    }

    [Fact]
    public async Task A_user_the_actions_policy_refuses_gets_403()
    {
        await using var dashboard = await DashboardServer.EmbeddedAsync(_fleet.Vhost.Url, allow: false);
        var (field, token, actions) = await dashboard.PageAsync();
        Assert.False(actions);
        using var response = await dashboard.PostAsync("api/lanes/query/pause", new Dictionary<string, string> { [field] = token });
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Contains("operators", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.False((await dashboard.StatsAsync()).GetProperty("actions").GetBoolean());
    }

    [Fact]
    public async Task A_post_without_the_antiforgery_token_is_refused_and_with_it_pause_resume_and_mode_reach_the_consumer()
    {
        await using var dashboard = await DashboardServer.EmbeddedAsync(_fleet.Vhost.Url, allow: true);
        var (field, token, actions) = await dashboard.PageAsync();
        Assert.True(actions);

        using (var forged = await dashboard.PostAsync("api/lanes/query/pause", new Dictionary<string, string>()))
            Assert.Equal(HttpStatusCode.BadRequest, forged.StatusCode);
        using (var wrong = await dashboard.PostAsync("api/lanes/query/pause", new Dictionary<string, string> { [field] = token[..^4] + "AAAA" }))
            Assert.Equal(HttpStatusCode.BadRequest, wrong.StatusCode);
        await Task.Delay(1000);
        Assert.False(_fleet.Hosts[0].IsPaused(SessionLane.Query));

        using (var pause = await dashboard.PostAsync("api/lanes/query/pause", new Dictionary<string, string> { [field] = token }))
            Assert.Equal(HttpStatusCode.OK, pause.StatusCode);
        await TestVhost.EventuallyAsync(() => Task.FromResult(_fleet.Hosts[0].IsPaused(SessionLane.Query)), "query paused by the dashboard");
        using (var resume = await dashboard.PostAsync("api/lanes/query/resume", new Dictionary<string, string> { [field] = token }))
            Assert.Equal(HttpStatusCode.OK, resume.StatusCode);
        await TestVhost.EventuallyAsync(() => Task.FromResult(!_fleet.Hosts[0].IsPaused(SessionLane.Query)), "query resumed by the dashboard");

        using (var mode = await dashboard.PostAsync("api/lanes/query/mode", new Dictionary<string, string> { [field] = token, ["mode"] = "hybrid" }))
            Assert.Equal(HttpStatusCode.OK, mode.StatusCode);
        await TestVhost.EventuallyAsync(async () => DashboardServer.Lane(await dashboard.StatsAsync(), "query").GetProperty("handler_mode").GetString() == "hybrid",
            "the consumer reports query in hybrid mode");

        using var badLane = await dashboard.PostAsync("api/lanes/nope/pause", new Dictionary<string, string> { [field] = token });
        Assert.Equal(HttpStatusCode.BadRequest, badLane.StatusCode);
        Assert.Contains("expected one of control, query, execute, generate", await badLane.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        using var badMode = await dashboard.PostAsync("api/lanes/query/mode", new Dictionary<string, string> { [field] = token, ["mode"] = "sideways" });
        Assert.Equal(HttpStatusCode.BadRequest, badMode.StatusCode);
        Assert.Contains("mode 'sideways'", await badMode.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_standalone_dashboard_listens_on_loopback_only_and_is_read_only_unless_actions_are_enabled()
    {
        await using (var readOnly = await DashboardServer.StandaloneAsync(_fleet.Vhost.Url, enableActions: false))
        {
            Assert.All(readOnly.Addresses, a => Assert.True(IPAddress.IsLoopback(IPAddress.Parse(new Uri(a).Host)), a));
            var (field, token, actions) = await readOnly.PageAsync();
            Assert.False(actions);
            using var refused = await readOnly.PostAsync("api/lanes/control/pause", new Dictionary<string, string> { [field] = token });
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
            // Another machine cannot reach it: nothing listens on this machine's other addresses.
            var port = new Uri(readOnly.Addresses.First()).Port;
            foreach (var other in (await Dns.GetHostAddressesAsync(Dns.GetHostName())).Where(a => a.AddressFamily == AddressFamily.InterNetwork && !IPAddress.IsLoopback(a)))
            {
                using var socket = new TcpClient();
                await Assert.ThrowsAnyAsync<SocketException>(() => socket.ConnectAsync(other, port));
            }
        }
        await using var acting = await DashboardServer.StandaloneAsync(_fleet.Vhost.Url, enableActions: true);
        var page = await acting.PageAsync();
        Assert.True(page.Actions);
        using var purge = await acting.PostAsync("api/lanes/control/dead-letters/purge", new Dictionary<string, string> { [page.Field] = page.Token });
        Assert.Equal(HttpStatusCode.OK, purge.StatusCode);
    }

    [Fact]
    public async Task Redrive_without_an_id_moves_every_dead_letter_of_the_lane_back_to_the_lane()
    {
        await using var dashboard = await DashboardServer.EmbeddedAsync(_fleet.Vhost.Url, allow: true);
        // three tasks naming a command type no consumer has: each ends failed and dead-lettered at once
        foreach (var i in Enumerable.Range(1, 3))
            await _fleet.Producer.SubmitTaskAsync(ExternalTask.Create($"dead-{i}", SessionLane.Generate, new { n = i }, "no-such-command"));
        var deadLetters = TestVhost.DeadLetters(SessionLane.Generate);
        await TestVhost.EventuallyAsync(async () => await _fleet.Vhost.ReadyAsync(deadLetters) == 3, "three dead letters in generate");
        // the lane paused, so the redriven tasks stay in it where the test can count them
        await _fleet.Producer.PauseLaneAsync(SessionLane.Generate);
        await TestVhost.EventuallyAsync(() => Task.FromResult(_fleet.Hosts[0].IsPaused(SessionLane.Generate)), "generate paused");

        var (field, token, _) = await dashboard.PageAsync();
        using var redrive = await dashboard.PostAsync("api/lanes/generate/dead-letters/redrive", new Dictionary<string, string> { [field] = token });
        Assert.Equal(HttpStatusCode.OK, redrive.StatusCode);
        var answer = await redrive.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>();
        Assert.Equal(3, answer.GetProperty("redriven").GetInt32());
        Assert.Equal(0u, await _fleet.Vhost.ReadyAsync(deadLetters));
        Assert.Equal(3u, await _fleet.Vhost.ReadyAsync(BrokerNames.LaneQueue(SessionLane.Generate)));
    }

    [Fact]
    public async Task The_dashboard_command_refuses_a_bad_port_or_host_naming_the_option()
    {
        foreach (var (args, expected) in new[] { (new[] { "--port", "70000" }, "--port"), (["--host", "not a host!"], "--host"), (["--management-url", "localhost:15672"], "--management-url") })
        {
            var error = new StringWriter();
            var code = await ProducerCli.RunAsync(["dashboard", .. args, "--url", _fleet.Vhost.Url], new System.CommandLine.InvocationConfiguration { Output = new StringWriter(), Error = error });
            Assert.Equal(ProducerCli.InvalidInput, code);
            Assert.Contains(expected, error.ToString(), StringComparison.Ordinal);
        }
    }
}
