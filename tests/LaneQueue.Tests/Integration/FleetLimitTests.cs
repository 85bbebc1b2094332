using LaneQueue.Consumer;
using LaneQueue.Contracts;
using LaneQueue.Producer;
using LaneQueue.Tests.Broker;
using LaneQueue.Tests.Faults;
using Xunit.Abstractions;

namespace LaneQueue.Tests.Integration;

/// <summary>
/// Fleet-wide lane limits (<c>LaneQueue:FleetLimits</c>) with several consumer PROCESSES on one vhost. How many tasks ran at
/// once is read from the results' <c>started_at</c> / <c>finished_at</c> (a task's token is taken before the first and given
/// back after the second); a run killed with its process counts from its <c>command.started</c> event to the kill. The cap
/// test has a control run without the fleet cap that must exceed it: the same processes, each allowed 2 generate tasks.
/// </summary>
[Collection(BrokerCollection.Name)]
public sealed class FleetLimitTests(BrokerFixture broker, ITestOutputHelper output) : IAsyncLifetime
{
    const int Cap = 2;
    TestVhost _vhost = null!;
    readonly List<ConsumerProcess> _processes = [];

    public async Task InitializeAsync() => _vhost = await broker.CreateVhostAsync();

    public async Task DisposeAsync()
    {
        foreach (var process in _processes)
            await process.DisposeAsync();
        await _vhost.DisposeAsync();
    }

    /// <summary>Each process may run 2 generate tasks (its own concurrency and slot budget); with the fleet cap, 2 in all.</summary>
    static string[] Settings(bool fleetCap) =>
    [
        "--LaneQueue:SlotBudget=2",
        "--LaneQueue:Queue:GenerateMaxConcurrency=2",
        .. fleetCap ? new[] { $"--LaneQueue:FleetLimits:Generate:MaxConcurrency={Cap}" } : [],
    ];

    async Task<ConsumerProcess[]> StartAsync(bool fleetCap, params string[] names)
    {
        var started = await Task.WhenAll(names.Select(name => ConsumerProcess.StartAsync(_vhost.Url, name, Settings(fleetCap))));
        _processes.AddRange(started);
        return started;
    }

    static List<ExternalTask> Tasks(string prefix, int count, int ms) =>
        [.. Enumerable.Range(1, count).Select(i => ExternalTask.Create($"{prefix}-{i}", SessionLane.Generate, new { ms }, "sleep"))];

    static async Task SubmitAsync(string url, ResultTally tally, IEnumerable<ExternalTask> tasks)
    {
        await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = url });
        foreach (var task in tasks)
        {
            await producer.SubmitTaskAsync(task);
            tally.Accepted(task.Id);
        }
    }

    /// <summary>Most intervals open at one instant (an interval ending when another starts does not overlap it).</summary>
    internal static int MaxRunning(IEnumerable<(DateTimeOffset Start, DateTimeOffset End)> runs)
    {
        var edges = runs.SelectMany(r => new[] { (At: r.Start, Delta: 1), (At: r.End, Delta: -1) })
            .OrderBy(e => e.At).ThenBy(e => e.Delta);
        int running = 0, max = 0;
        foreach (var edge in edges)
            max = Math.Max(max, running += edge.Delta);
        return max;
    }

    static IEnumerable<(DateTimeOffset, DateTimeOffset)> Runs(ResultTally tally, IEnumerable<string> ids) =>
        ids.SelectMany(tally.ResultsOf).Where(r => r.Status == TaskStatuses.Completed).Select(r => (r.StartedAt, r.FinishedAt));

    async Task<(ResultTally.Counts Counts, int MaxRunning, int Consumers)> RunAsync(bool fleetCap)
    {
        await StartAsync(fleetCap, "cap-a", "cap-b", "cap-c");
        await using var tally = await ResultTally.StartAsync(_vhost.Url);
        var tasks = Tasks(fleetCap ? "capped" : "uncapped", 18, 300);
        await SubmitAsync(_vhost.Url, tally, tasks);
        var counts = await tally.WaitForAllAsync(TimeSpan.FromSeconds(120), output.WriteLine);
        var max = MaxRunning(Runs(tally, tasks.Select(t => t.Id)));
        var consumers = tasks.SelectMany(t => tally.ResultsOf(t.Id)).Select(r => r.Consumer).Distinct().Count();
        var summary = $"fleet cap {(fleetCap ? Cap.ToString(System.Globalization.CultureInfo.InvariantCulture) : "off")}: at most {max} generate tasks ran at once over 3 processes ({consumers} of them ran some); {counts}";
        output.WriteLine(summary);
        Evidence.Write($"fleet-cap-{(fleetCap ? "on" : "off")}", new
        {
            Processes = 3,
            PerProcessGenerateConcurrency = 2,
            FleetCap = fleetCap ? Cap : (int?)null,
            Tasks = tasks.Count,
            TaskMs = 300,
            MaxRunningAtOnce = max,
            ProcessesThatRanTasks = consumers,
            counts.Completed,
            counts.Lost,
            RanTwice = counts.Duplicated,
            Asserted = fleetCap ? $"max running <= {Cap}" : $"max running > {Cap}",
        }, summary);
        Assert.True(counts.Lost == 0 && counts.Duplicated == 0, $"{counts}\n{tally.DescribeMissing()}");
        return (counts, max, consumers);
    }

    [Fact]
    public async Task A_fleet_cap_of_2_holds_across_3_consumer_processes()
    {
        var (_, max, consumers) = await RunAsync(fleetCap: true);
        Assert.True(max <= Cap, $"{max} generate tasks ran at once with a fleet cap of {Cap}");
        Assert.Equal(Cap, max); // the cap is used, not just respected
        Assert.True(consumers >= 2, $"only {consumers} process ran tasks: tokens did not go round the fleet");
    }

    /// <summary>The control run: the same three processes without the fleet cap run more than 2 at once (up to 3 x 2).</summary>
    [Fact]
    public async Task Without_the_fleet_cap_3_consumer_processes_run_more_than_2_at_once()
    {
        var (_, max, _) = await RunAsync(fleetCap: false);
        Assert.True(max > Cap, $"without the fleet cap only {max} ran at once: the capped test would prove nothing");
    }

    /// <summary>
    /// kill -9 of a process holding every token (2 tasks running): the broker gives its tokens back when its connection
    /// closes, so the next process runs 2 at once and finishes every task, the killed ones again; never more than 2 at once.
    /// </summary>
    [Fact]
    public async Task A_process_killed_while_holding_the_tokens_gives_them_back_and_no_task_is_lost()
    {
        var victim = (await StartAsync(fleetCap: true, "victim"))[0];
        await using var tally = await ResultTally.StartAsync(_vhost.Url);
        var tasks = Tasks("kill", 10, 1000);
        await SubmitAsync(_vhost.Url, tally, tasks);
        await ConsumerKillTests.WaitUntilAsync(() => tally.StartedBy("victim").Count() >= Cap, TimeSpan.FromSeconds(60), "the victim runs 2 tasks (holds both tokens)");
        var killedAt = DateTimeOffset.UtcNow;
        victim.KillHard();
        var killedRuns = tally.StartedBy("victim").Where(id => !tally.ResultsOf(id).Any()).ToList();
        output.WriteLine($"killed the victim with {killedRuns.Count} tasks running: {string.Join(", ", killedRuns)}");

        var survivors = await StartAsync(fleetCap: true, "survivor-a", "survivor-b");
        var counts = await tally.WaitForAllAsync(TimeSpan.FromSeconds(120), output.WriteLine);
        var survivorRuns = tasks.SelectMany(t => tally.ResultsOf(t.Id)).Where(r => r.Consumer != "victim" && r.Status == TaskStatuses.Completed).Select(r => (r.StartedAt, r.FinishedAt)).ToList();
        var max = MaxRunning(Runs(tally, tasks.Select(t => t.Id)).Concat(killedRuns.Select(_ => (killedAt - TimeSpan.FromSeconds(1), killedAt))));
        var survivorMax = MaxRunning(survivorRuns);
        var summary = $"{counts}; after the kill the survivors ran at most {survivorMax} at once; at most {max} at once over the whole run";
        output.WriteLine(summary);
        Evidence.Write("fleet-cap-kill", new
        {
            Fault = "kill -9 of a consumer process holding both tokens of a fleet cap of 2 (2 tasks running)",
            Tasks = tasks.Count,
            TaskMs = 1000,
            RunningOnTheVictimWhenKilled = killedRuns.Count,
            SurvivorsMaxRunningAtOnce = survivorMax,
            MaxRunningAtOnce = max,
            counts.Completed,
            counts.Lost,
            RanTwice = counts.Duplicated,
        }, summary);

        Assert.True(killedRuns.Count == Cap, $"the victim must hold both tokens when killed, held {killedRuns.Count}");
        Assert.True(counts.Lost == 0, $"lost tasks: {counts}\n{tally.DescribeMissing()}\n--- survivor ---\n{ConsumerKillTests.Tail(survivors[0].Output)}");
        Assert.All(killedRuns, id => Assert.Contains(tally.ResultsOf(id), r => r.Status == TaskStatuses.Completed && r.Consumer != "victim"));
        Assert.Equal(Cap, survivorMax); // both tokens came back
        Assert.True(max <= Cap, $"{max} ran at once");
    }

    /// <summary>A consumer whose cap differs from the one the fleet's token queue was set up with does not start, and says why.</summary>
    [Fact]
    public async Task A_consumer_with_a_different_fleet_cap_fails_to_start_naming_the_setting()
    {
        var first = await ConsumerHost.StartAsync(_vhost.Url, o => o.FleetLimits[SessionLane.Generate] = new FleetLaneLimit { MaxConcurrency = 2 }, name: "cap-2");
        var refused = await Assert.ThrowsAnyAsync<Exception>(() =>
            ConsumerHost.StartAsync(_vhost.Url, o => o.FleetLimits[SessionLane.Generate] = new FleetLaneLimit { MaxConcurrency = 3 }, name: "cap-3"));
        await first.StopQuietlyAsync();
        output.WriteLine(refused.Message);
        Assert.Contains("LaneQueue:FleetLimits:Generate:MaxConcurrency = 3", refused.Message, StringComparison.Ordinal);
        Assert.Contains(FleetLimitQueues.Running(SessionLane.Generate), refused.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// A fleet rate of 4 per second with two consumers: at most 4 starts in any window shorter than a second over both (a
    /// spent start token comes back one period later), so the (k+4)-th start is at least ~a second after the k-th (0.8 s
    /// leaves room for a start that was itself late). The control: the per-process limit of 4/s on each lets 8 start at once.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_fleet_rate_of_4_per_second_holds_over_two_consumers_where_per_process_limits_add_up(bool fleetRate)
    {
        const int perSecond = 4, count = 16;
        var rate = new RateLimit { LimitType = RateLimitType.PerSecond, MaxOperations = perSecond };
        await using var fleet = new TestFleet(await broker.CreateVhostAsync());
        foreach (var name in new[] { "rate-a", "rate-b" })
        {
            await fleet.StartConsumerAsync(name, o =>
            {
                if (fleetRate)
                    o.FleetLimits[SessionLane.Generate] = new FleetLaneLimit { RateLimit = rate };
                else
                    o.LaneRateLimits[SessionLane.Generate] = rate;
            });
        }
        var results = await Task.WhenAll(Enumerable.Range(1, count).Select(i =>
            fleet.Producer.SubmitAndWaitAsync(ExternalTask.Create($"rate-{i}", SessionLane.Generate, new { i }), TimeSpan.FromSeconds(60))));
        Assert.All(results, r => Assert.True(r.Success, r.Error));
        var starts = results.Select(r => r.StartedAt).Order().ToList();
        var tightest = Enumerable.Range(0, count - perSecond).Min(k => starts[k + perSecond] - starts[k]);
        var consumers = results.Select(r => r.Consumer).Distinct().Count();
        var offsets = starts.Select(t => Math.Round((t - starts[0]).TotalMilliseconds)).ToList();
        var summary = $"{(fleetRate ? "fleet" : "per-process")} rate {perSecond}/s, 2 consumers ({consumers} ran tasks): tightest {perSecond + 1} starts spanned {tightest.TotalMilliseconds:0} ms; starts (ms): {string.Join(", ", offsets)}";
        output.WriteLine(summary);
        Evidence.Write($"fleet-rate-{(fleetRate ? "on" : "off")}", new
        {
            Consumers = 2,
            Limit = fleetRate ? $"FleetLimits:Generate:RateLimit {perSecond}/s" : $"LaneRateLimits:Generate {perSecond}/s on each consumer",
            Tasks = count,
            TightestSpanOf5StartsMs = Math.Round(tightest.TotalMilliseconds),
            StartOffsetsMs = offsets,
            Asserted = fleetRate ? "every 5 consecutive starts span >= 800 ms" : "some 5 consecutive starts span < 800 ms",
        }, summary);
        Assert.Equal(2, consumers);
        if (fleetRate)
            Assert.True(tightest >= TimeSpan.FromMilliseconds(800), $"{perSecond + 1} starts within {tightest.TotalMilliseconds:0} ms with a fleet rate of {perSecond}/s");
        else
            Assert.True(tightest < TimeSpan.FromMilliseconds(800), $"per-process limits must add up over the fleet for the control run to mean anything: tightest {tightest.TotalMilliseconds:0} ms");
    }

    /// <summary>With quorum lane queues the token queues are quorum queues too (replicated for a cluster): set up and used the same way.</summary>
    [Fact]
    public async Task Fleet_limits_work_with_quorum_queues()
    {
        var consumer = await ConsumerHost.StartAsync(_vhost.Url, o =>
        {
            o.QuorumQueues = true;
            o.Queue = o.Queue with { GenerateMaxConcurrency = 3 };
            o.SlotBudget = 3;
            o.FleetLimits[SessionLane.Generate] = new FleetLaneLimit
            {
                MaxConcurrency = 1,
                RateLimit = new RateLimit { LimitType = RateLimitType.PerSecond, MaxOperations = 50 },
            };
        }, name: "quorum-limits");
        await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = _vhost.Url, QuorumQueues = true });
        var results = await Task.WhenAll(Enumerable.Range(1, 6).Select(i =>
            producer.SubmitAndWaitAsync(ExternalTask.Create($"quorum-{i}", SessionLane.Generate, new { ms = 100 }, "sleep"), TimeSpan.FromSeconds(60))));
        await consumer.StopQuietlyAsync();
        Assert.All(results, r => Assert.True(r.Success, r.Error));
        Assert.Equal(1, MaxRunning(results.Select(r => (r.StartedAt, r.FinishedAt))));
        var running = await _vhost.QueueAsync(FleetLimitQueues.Running(SessionLane.Generate));
        Assert.Equal("quorum", running!.Value.GetProperty("type").GetString());
    }

    /// <summary>
    /// A task cancelled while it waits for a fleet token ends cancelled without running, and leaves no token behind: with a cap
    /// of 1, the next task runs once the running one has finished.
    /// </summary>
    [Fact]
    public async Task A_task_cancelled_while_waiting_for_a_fleet_token_ends_cancelled_and_keeps_no_token()
    {
        var consumer = await ConsumerHost.StartAsync(_vhost.Url, o =>
        {
            o.SlotBudget = 2;
            o.Queue = o.Queue with { GenerateMaxConcurrency = 2 };
            o.FleetLimits[SessionLane.Generate] = new FleetLaneLimit { MaxConcurrency = 1 };
        }, name: "cancel-waiting");
        try
        {
            await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = _vhost.Url });
            var first = await producer.WatchResultAsync("hold-1");
            var waiting = await producer.WatchResultAsync("wait-1");
            await producer.SubmitTaskAsync(ExternalTask.Create("hold-1", SessionLane.Generate, new { ms = 1500 }, "sleep"));
            await Task.Delay(300);
            await producer.SubmitTaskAsync(ExternalTask.Create("wait-1", SessionLane.Generate, new { ms = 100 }, "sleep"));
            // wait-1 is delivered (generate concurrency 2) and waits for the only token, which hold-1 has.
            await TestVhost.EventuallyAsync(async () => await _vhost.ConsumersAsync(FleetLimitQueues.Running(SessionLane.Generate)) == 1,
                "wait-1 waiting for a token");
            await producer.CancelTaskAsync("wait-1");
            var cancelled = await waiting.WaitAsync(TimeSpan.FromSeconds(30));
            output.WriteLine($"wait-1: {cancelled.Status} {cancelled.Error}");
            Assert.Equal(TaskStatuses.Cancelled, cancelled.Status);
            Assert.True((await first.WaitAsync(TimeSpan.FromSeconds(30))).Success);
            var next = await producer.SubmitAndWaitAsync(ExternalTask.Create("next-1", SessionLane.Generate, new { ms = 10 }, "sleep"), TimeSpan.FromSeconds(30));
            Assert.True(next.Success, next.Error);
            Assert.Equal(1u, await _vhost.ReadyAsync(FleetLimitQueues.Running(SessionLane.Generate)));
        }
        finally
        {
            await consumer.StopQuietlyAsync();
        }
    }
}
