using LaneQueue.Contracts;
using LaneQueue.Producer;
using LaneQueue.Tests.Broker;
using Xunit.Abstractions;

namespace LaneQueue.Tests.Integration;

/// <summary>
/// Delayed tasks (<c>delay_ms</c> / <c>not_before</c>) against a real broker: they wait in the delay tree's TTL hop queues
/// (<c>lanequeue.delay.*</c>), not in a consumer, and join their lane when due. Each test runs on its own vhost. Start times
/// are the consumer's (<see cref="StartLog.Entry.At"/>: when the task got its slot), compared with the moment the submit's
/// confirm came back, in the same process and clock.
/// </summary>
[Collection(BrokerCollection.Name)]
public sealed class DelayedTaskTests(BrokerFixture broker, ITestOutputHelper output) : IAsyncLifetime
{
    static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);
    readonly StartLog _log = new();

    static DelayedTaskTests()
    {
        // The consumers run in the test process, whose thread pool CPU-bound test classes running in parallel (the property
        // tests) can hold: on 2 cores the pool then adds a thread about every 0.5 s, and a consumer's start waits that long
        // (seen: 0.6-0.9 s late starts while the unit tests ran, none alone). Timing tests need the threads there at once.
        ThreadPool.GetMinThreads(out var workers, out var io);
        ThreadPool.SetMinThreads(Math.Max(workers, 32), io);
    }
    TestFleet _fleet = null!;

    public async Task InitializeAsync() => _fleet = new TestFleet(await broker.CreateVhostAsync());

    public async Task DisposeAsync() => await _fleet.DisposeAsync();

    Task StartConsumerAsync(string name = "consumer-0", int slots = 4) =>
        _fleet.StartConsumerAsync(name, o => o.SlotBudget = slots, h => h.AddHandler(StartLog.CommandType, _log.HandleAsync));

    async Task<StartLog.Entry> StartOfAsync(string id, int timeoutSeconds = 60)
    {
        await TestVhost.EventuallyAsync(() => Task.FromResult(_log.StartOf(id) is not null), $"task {id} started", timeoutSeconds);
        return _log.StartOf(id)!;
    }

    /// <summary>Submits and returns when the broker's confirm came back (what "after its submit confirm" counts from).</summary>
    async Task<DateTimeOffset> SubmitAsync(ExternalTask task)
    {
        await _fleet.Producer.SubmitTaskAsync(task);
        return DateTimeOffset.UtcNow;
    }

    /// <summary>
    /// An undelayed task's submit-confirm-to-start latency on this fleet now, after two warm-up tasks (one through the delay
    /// tree): the consumer runs in the test process, whose first moments it shares with other test classes starting up.
    /// </summary>
    async Task<TimeSpan> ControlLatencyAsync(string prefix)
    {
        await SubmitAsync(StartLog.Make($"{prefix}-warm-up", SessionLane.Query, 0));
        await StartOfAsync($"{prefix}-warm-up");
        await SubmitAsync(StartLog.Make($"{prefix}-warm-up-delayed", SessionLane.Query, 0).After(TimeSpan.FromMilliseconds(100)));
        await StartOfAsync($"{prefix}-warm-up-delayed");
        var confirmed = await SubmitAsync(StartLog.Make($"{prefix}-control", SessionLane.Query, 0));
        var latency = (await StartOfAsync($"{prefix}-control")).At - confirmed;
        output.WriteLine($"control (undelayed) submit-confirm-to-start: {latency.TotalMilliseconds:0.0} ms");
        return latency;
    }

    [Fact]
    public async Task A_task_delayed_3_s_starts_between_3_0_and_3_5_s_after_its_submit_confirm()
    {
        await StartConsumerAsync();
        var control = await ControlLatencyAsync("c3");

        var confirmed = await SubmitAsync(StartLog.Make("delayed-3s", SessionLane.Query, 0).After(TimeSpan.FromMilliseconds(3000)));
        var waited = (await StartOfAsync("delayed-3s")).At - confirmed;
        output.WriteLine($"delay_ms 3000: started {waited.TotalMilliseconds:0.0} ms after its submit confirm ({DelayTopology.Hops(TimeSpan.FromSeconds(3))} hops)");

        Assert.True(waited >= TimeSpan.FromSeconds(3), $"started {waited.TotalMilliseconds:0.0} ms after the confirm: before its 3,000 ms delay");
        Assert.True(waited <= TimeSpan.FromSeconds(3.5) + control,
            $"started {waited.TotalMilliseconds:0.0} ms after the confirm: later than 3,500 ms + the control's {control.TotalMilliseconds:0.0} ms");
        Evidence.Write("delayed-task-3s", new { delay_ms = 3000, started_after_confirm_ms = Math.Round(waited.TotalMilliseconds, 1), control_latency_ms = Math.Round(control.TotalMilliseconds, 1) },
            $"delay_ms 3000 started {waited.TotalMilliseconds:0} ms after its submit confirm (control {control.TotalMilliseconds:0.0} ms)");
    }

    [Fact]
    public async Task Delays_from_0_2_s_to_5_s_each_start_no_earlier_than_their_delay_and_within_max_0_5_s_or_2_percent_after_it()
    {
        await StartConsumerAsync();
        var control = await ControlLatencyAsync("cm");
        double[] delays = [0.2, 1, 2.5, 5, 0.35, 1.75];
        // One after the other, each timed from its own confirm (a burst's confirms come back late, as a batch).
        var confirmedAt = new DateTimeOffset[delays.Length];
        for (var i = 0; i < delays.Length; i++)
            confirmedAt[i] = await SubmitAsync(StartLog.Make($"d-{i}", SessionLane.Query, 0).After(TimeSpan.FromSeconds(delays[i])));

        var measured = new List<object>();
        for (var i = 0; i < delays.Length; i++)
        {
            var delay = TimeSpan.FromSeconds(delays[i]);
            var waited = (await StartOfAsync($"d-{i}")).At - confirmedAt[i];
            var late = waited - delay;
            var bound = TimeSpan.FromMilliseconds(Math.Max(500, delay.TotalMilliseconds * 0.02)) + control;
            output.WriteLine($"delay {delay.TotalMilliseconds,6:0} ms: started {waited.TotalMilliseconds,8:0.0} ms after its confirm, {late.TotalMilliseconds,6:0.0} ms late ({DelayTopology.Hops(delay)} hops)");
            measured.Add(new { delay_ms = delay.TotalMilliseconds, started_after_confirm_ms = Math.Round(waited.TotalMilliseconds, 1), late_ms = Math.Round(late.TotalMilliseconds, 1), hops = DelayTopology.Hops(delay) });
            Assert.True(waited >= delay, $"delay {delay.TotalMilliseconds} ms: started {waited.TotalMilliseconds:0.0} ms after its confirm, early");
            Assert.True(late <= bound, $"delay {delay.TotalMilliseconds} ms: {late.TotalMilliseconds:0.0} ms late, over the bound of {bound.TotalMilliseconds:0.0} ms");
        }
        Evidence.Write("delayed-task-accuracy", new { control_latency_ms = Math.Round(control.TotalMilliseconds, 1), tasks = measured },
            $"{delays.Length} delays from 0.2 s to 5 s, each started no earlier than its delay");
    }

    [Fact]
    public async Task Fifty_delays_from_0_1_s_to_60_s_never_start_early_and_p95_within_max_0_5_s_or_2_percent()
    {
        await StartConsumerAsync();
        var control = await ControlLatencyAsync("p95");
        // Log-spaced from 0.1 s to 60 s, submitted one after the other (about 1 s for all), each timed from its own confirm.
        var delays = Enumerable.Range(0, 50).Select(i => TimeSpan.FromMilliseconds(Math.Round(100 * Math.Pow(600, i / 49.0)))).ToArray();
        var confirmedAt = new DateTimeOffset[delays.Length];
        for (var i = 0; i < delays.Length; i++)
            confirmedAt[i] = await SubmitAsync(StartLog.Make($"p95-{i}", SessionLane.Query, 0).After(delays[i]));

        var rows = new List<(double DelayMs, double LateMs, bool Within)>();
        for (var i = 0; i < delays.Length; i++)
        {
            var late = (await StartOfAsync($"p95-{i}", 120)).At - confirmedAt[i] - delays[i];
            var within = late <= TimeSpan.FromMilliseconds(Math.Max(500, delays[i].TotalMilliseconds * 0.02));
            rows.Add((delays[i].TotalMilliseconds, Math.Round(late.TotalMilliseconds, 1), within));
        }
        var sortedLate = rows.Select(r => r.LateMs).Order().ToList();
        var p95 = sortedLate[(int)Math.Ceiling(0.95 * sortedLate.Count) - 1];
        output.WriteLine($"50 delays 0.1-60 s: late min {sortedLate[0]} ms, median {sortedLate[25]} ms, p95 {p95} ms, max {sortedLate[^1]} ms; " +
            $"{rows.Count(r => r.Within)} of 50 within max(0.5 s, 2 %) (control {control.TotalMilliseconds:0.0} ms)");
        Evidence.Write("delayed-task-p95", new
        {
            control_latency_ms = Math.Round(control.TotalMilliseconds, 1),
            late_ms_min = sortedLate[0],
            late_ms_median = sortedLate[25],
            late_ms_p95 = p95,
            late_ms_max = sortedLate[^1],
            within_bound = rows.Count(r => r.Within),
            tasks = rows.Select(r => new { delay_ms = r.DelayMs, late_ms = r.LateMs }),
        }, $"50 delays from 0.1 s to 60 s: p95 {p95} ms late, max {sortedLate[^1]} ms, none early");

        Assert.All(rows, r => Assert.True(r.LateMs >= 0, $"delay {r.DelayMs} ms started {-r.LateMs} ms early"));
        Assert.True(rows.Count(r => r.Within) >= 48, $"only {rows.Count(r => r.Within)} of 50 within max(0.5 s, 2 %) of their delay");
    }

    [Fact]
    public async Task A_delayed_task_holds_no_slot_an_immediate_task_submitted_after_it_starts_at_once()
    {
        await StartConsumerAsync(slots: 1);
        var control = await ControlLatencyAsync("slot");
        var delayedConfirmed = await SubmitAsync(StartLog.Make("delayed-5s", SessionLane.Query, 0).After(TimeSpan.FromSeconds(5)));
        var confirmed = await SubmitAsync(StartLog.Make("now-1", SessionLane.Query, 0));

        var immediate = (await StartOfAsync("now-1")).At - confirmed;
        output.WriteLine($"immediate task after a 5 s delayed one, 1 slot: started after {immediate.TotalMilliseconds:0.0} ms (control {control.TotalMilliseconds:0.0} ms)");
        Assert.True(immediate < TimeSpan.FromSeconds(1), $"the immediate task waited {immediate.TotalMilliseconds:0.0} ms behind a delayed task");
        // The delayed task waits at the broker, in a hop queue of the delay tree, not in the consumer.
        Assert.Equal(1u, await _fleet.Vhost.ReadyInDelayTreeAsync());
        Assert.True((await StartOfAsync("delayed-5s")).At - delayedConfirmed >= TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task A_delayed_task_survives_its_consumer_stopping_and_a_new_one_starting_and_runs_once()
    {
        await StartConsumerAsync("first");
        var result = await _fleet.Producer.WatchResultAsync("survivor");
        await ControlLatencyAsync("survivor"); // the first consumer takes tasks
        var confirmed = await SubmitAsync(StartLog.Make("survivor", SessionLane.Execute, 0).After(TimeSpan.FromSeconds(4)));
        await Task.Delay(1000);
        Assert.Null(_log.StartOf("survivor")); // waiting at the broker, not on the first consumer
        await _fleet.Hosts[0].StopQuietlyAsync();
        _fleet.Hosts.Clear();
        await StartConsumerAsync("second");

        var done = await result.WaitAsync(Wait);
        Assert.Equal(TaskStatuses.Completed, done.Status);
        Assert.Equal("second", done.Consumer);
        Assert.True((await StartOfAsync("survivor")).At - confirmed >= TimeSpan.FromSeconds(4));
        await Task.Delay(1000); // room for a second run, were there one
        Assert.Single(_log.Starts, s => s.Id == "survivor");
    }

    [Fact]
    public async Task A_delayed_task_cancelled_by_id_or_session_while_it_waits_is_answered_cancelled_and_never_starts()
    {
        await StartConsumerAsync();
        var byId = await _fleet.Producer.WatchResultAsync("cancel-me");
        var bySession = await _fleet.Producer.WatchResultAsync("cancel-session");
        await SubmitAsync(StartLog.Make("cancel-me", SessionLane.Query, 0).After(TimeSpan.FromSeconds(2)));
        await SubmitAsync((StartLog.Make("cancel-session", SessionLane.Generate, 0) with { SessionId = "s-delayed" }).At(DateTimeOffset.UtcNow.AddSeconds(2)));
        await _fleet.Producer.CancelTaskAsync("cancel-me");
        await _fleet.Producer.CancelSessionAsync("s-delayed");

        var submitted = DateTimeOffset.UtcNow;
        var cancelled = await byId.WaitAsync(Wait);
        Assert.Equal(TaskStatuses.Cancelled, cancelled.Status);
        Assert.Equal(TaskStatuses.Cancelled, (await bySession.WaitAsync(Wait)).Status);
        Assert.Null(_log.StartOf("cancel-me"));
        Assert.Null(_log.StartOf("cancel-session"));
        // Answered when it came due (it waited at the broker, where no consumer could answer it earlier).
        Assert.True(cancelled.FinishedAt - submitted >= TimeSpan.FromSeconds(1.5), $"answered {(cancelled.FinishedAt - submitted).TotalMilliseconds} ms after the cancel");
    }

    [Fact]
    public async Task A_task_published_straight_to_its_lane_with_delay_ms_is_routed_into_the_delay_tree_by_the_consumer()
    {
        await StartConsumerAsync();
        await using var raw = await RawClient.ConnectAsync(_fleet.Vhost.Url);
        // As another language's client sends it: to lanequeue.tasks, routing key = lane, with delay_ms and no created_at.
        await raw.PublishAsync("query", """{"id":"raw-delayed","lane":"query","payload":{},"command_type":"record","delay_ms":1500}""");
        var confirmed = DateTimeOffset.UtcNow;
        var waited = (await StartOfAsync("raw-delayed")).At - confirmed;
        output.WriteLine($"published straight to the lane with delay_ms 1500: started {waited.TotalMilliseconds:0.0} ms after its confirm");
        Assert.True(waited >= TimeSpan.FromMilliseconds(1500), $"started after {waited.TotalMilliseconds:0.0} ms");
        Assert.True(waited <= TimeSpan.FromMilliseconds(2500), $"started after {waited.TotalMilliseconds:0.0} ms");
        var result = await raw.ResultAsync("raw-delayed");
        Assert.Equal("completed", result.GetProperty("status").GetString());
        Assert.Single(_log.Starts, s => s.Id == "raw-delayed");
        // Its x-death history from the hops did not make the fleet take it for a broker dead letter.
        Assert.Equal(0u, await _fleet.Vhost.ReadyAsync(TestVhost.DeadLetters(SessionLane.Query)));
    }

    [Fact]
    public async Task A_vhost_with_the_classic_hop_queues_of_1_2_upgrades_their_tasks_still_come_due_new_ones_wait_in_quorum_queues()
    {
        // The delay tree as LaneQueue 1.2 declared it, in part: level 7's exchange and classic queue (6.4 s), holding a task,
        // and level 5's classic queue, empty.
        var delay = TimeSpan.FromMilliseconds(6360); // 128 units: level 7 only
        Assert.Equal(128, DelayTopology.Units(delay));
        var factory = new RabbitMQ.Client.ConnectionFactory { Uri = new Uri(_fleet.Vhost.Url) };
        await using (var connection = await factory.CreateConnectionAsync())
        await using (var channel = await connection.CreateChannelAsync(new RabbitMQ.Client.CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true)))
        {
            foreach (var level in new[] { 5, 7 })
            {
                var name = BrokerNames.DelayLevel(level);
                await channel.ExchangeDeclareAsync(name, RabbitMQ.Client.ExchangeType.Topic, durable: true, autoDelete: false);
                await channel.QueueDeclareAsync(name, durable: true, exclusive: false, autoDelete: false, arguments: new Dictionary<string, object?>
                {
                    ["x-message-ttl"] = DelayTopology.TtlMs(level),
                    ["x-dead-letter-exchange"] = BrokerNames.DelayLevel(level - 1),
                });
                await channel.QueueBindAsync(name, name, DelayTopology.Pattern(level, '1'));
            }
            var properties = DelayTopology.Entering(new RabbitMQ.Client.BasicProperties { Persistent = true, MessageId = "old-tree" }, DateTimeOffset.UtcNow + delay);
            var body = System.Text.Encoding.UTF8.GetBytes("""{"id":"old-tree","lane":"query","payload":{},"command_type":"record"}""");
            await channel.BasicPublishAsync(BrokerNames.DelayLevel(7), DelayTopology.RoutingKey(delay, SessionLane.Query), mandatory: true, properties, body);
        }
        Assert.Equal(1u, await _fleet.Vhost.ReadyAsync(BrokerNames.DelayLevel(7)));

        await StartConsumerAsync(); // declares the tree: quorum hop queues, the classic ones retired
        await SubmitAsync(StartLog.Make("new-tree", SessionLane.Query, 0).After(delay));
        Assert.Null(await _fleet.Vhost.DeclarePassiveAsync(BrokerNames.DelayLevel(5))); // empty: deleted
        Assert.Equal(1u, await _fleet.Vhost.ReadyAsync(BrokerNames.DelayLevel(7))); // the old task only: unbound
        Assert.Equal(1u, await _fleet.Vhost.ReadyAsync(BrokerNames.DelayQueue(7))); // the new one
        var queue = await _fleet.Vhost.QueueAsync(BrokerNames.DelayQueue(7));
        output.WriteLine($"level 7 after the upgrade: {queue}");

        await StartOfAsync("old-tree");
        await StartOfAsync("new-tree");
        // The next declare (a producer connecting) deletes the old queue now that it is empty.
        await using (var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = _fleet.Vhost.Url }))
            Assert.Null(await _fleet.Vhost.DeclarePassiveAsync(BrokerNames.DelayLevel(7)));
        Assert.Single(_log.Starts, s => s.Id == "old-tree");
        Assert.Single(_log.Starts, s => s.Id == "new-tree");
    }

    [Fact]
    public async Task The_cli_submits_with_delay_and_at_and_waits_for_the_result()
    {
        await StartConsumerAsync();
        async Task<(int Code, string Output)> CliAsync(params string[] args)
        {
            var output = new StringWriter();
            var code = await LaneQueue.Cli.ProducerCli.RunAsync([.. args, "--url", _fleet.Vhost.Url], new System.CommandLine.InvocationConfiguration { Output = output, Error = output });
            return (code, output.ToString());
        }

        var before = DateTimeOffset.UtcNow;
        var delayed = await CliAsync("submit", "--lane", "query", "--id", "cli-delay", "--command-type", StartLog.CommandType, "--delay", "1500ms", "--wait", "20");
        Assert.True(delayed.Code == 0, delayed.Output);
        Assert.True(_log.StartOf("cli-delay")!.At - before >= TimeSpan.FromMilliseconds(1500), $"started {(_log.StartOf("cli-delay")!.At - before).TotalMilliseconds} ms after the command began");

        var at = DateTimeOffset.UtcNow.AddSeconds(2);
        var timed = await CliAsync("submit", "--lane", "execute", "--id", "cli-at", "--command-type", StartLog.CommandType,
            "--at", at.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", System.Globalization.CultureInfo.InvariantCulture), "--wait", "20");
        Assert.True(timed.Code == 0, timed.Output);
        Assert.True(_log.StartOf("cli-at")!.At >= at, $"started at {_log.StartOf("cli-at")!.At:O}, before --at {at:O}");

        var both = await CliAsync("submit", "--lane", "query", "--delay", "1s", "--at", at.ToString("O", System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(2, both.Code);
        Assert.Contains("--delay and --at are both given", both.Output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(LaneTopology.QueuePerLane, false, null)]
    [InlineData(LaneTopology.QueuePerLane, true, 3)]
    [InlineData(LaneTopology.PriorityQueue, false, null)]
    public async Task A_delayed_task_reaches_its_lane_in_every_topology_and_gets_one_result(LaneTopology topology, bool quorum, int? deliveryLimit)
    {
        // Not TestFleet.StartConsumerAsync: its default producer would be refused by lanes of another topology.
        _fleet.Hosts.Add(await ConsumerHost.StartAsync(_fleet.Vhost.Url, o =>
        {
            o.Topology = topology;
            o.QuorumQueues = quorum;
            o.DeliveryLimit = deliveryLimit;
        }, h => h.AddHandler(StartLog.CommandType, _log.HandleAsync), "consumer-0"));
        await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions
        {
            RabbitMqUrl = _fleet.Vhost.Url, Topology = topology, QuorumQueues = quorum, DeliveryLimit = deliveryLimit,
        });
        await using var raw = await RawClient.ConnectAsync(_fleet.Vhost.Url);
        await producer.SubmitTaskAsync(StartLog.Make("topology-delayed", SessionLane.Generate, 0).After(TimeSpan.FromSeconds(1)));
        var confirmed = DateTimeOffset.UtcNow;
        Assert.True((await StartOfAsync("topology-delayed")).At - confirmed >= TimeSpan.FromSeconds(1));
        var result = await raw.ResultAsync("topology-delayed");
        Assert.Equal("completed", result.GetProperty("status").GetString());
        // With a delivery limit the broker dead-letter answers run: the hops' x-death entries must not earn a second, failed, result.
        await Task.Delay(1500);
        Assert.Equal("completed", raw.Results["topology-delayed"].GetProperty("status").GetString());
        Assert.Equal(0u, await _fleet.Vhost.ReadyAsync(topology == LaneTopology.PriorityQueue
            ? BrokerNames.DeadLetterQueue(BrokerNames.PriorityQueue) : TestVhost.DeadLetters(SessionLane.Generate)));
    }
}
