using System.Collections.Concurrent;
using System.CommandLine;
using LaneQueue.Cli;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Text;
using System.Text.Json;
using LaneQueue.Consumer;
using LaneQueue.Contracts;
using LaneQueue.Producer;
using LaneQueue.Tests.Broker;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using RabbitMQ.Client;

namespace LaneQueue.Tests.Integration;

/// <summary>Operating the fleet: stats, fleet control, metrics, traces, health, and the lanequeue CLI end to end.</summary>
[Collection(BrokerCollection.Name)]
public sealed class OperationsTests(BrokerFixture broker) : IAsyncLifetime
{
    static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);
    TestFleet _fleet = null!;

    public async Task InitializeAsync() => _fleet = new TestFleet(await broker.CreateVhostAsync());

    public async Task DisposeAsync() => await _fleet.DisposeAsync();

    Task<IHost> StartConsumerAsync(string name, Action<LaneQueueOptions>? configure = null, Action<LaneQueueConsumerBuilder>? handlers = null) =>
        _fleet.StartConsumerAsync(name, o =>
        {
            o.HeartbeatIntervalMs = 500;
            configure?.Invoke(o);
        }, handlers);

    Task<(int Code, string Out, string Err)> CliAsync(params string[] args) => CliAtAsync(_fleet.Vhost.Url, args);

    static async Task<(int Code, string Out, string Err)> CliAtAsync(string url, params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var code = await ProducerCli.RunAsync([.. args, "--url", url], new InvocationConfiguration { Output = output, Error = error });
        return (code, output.ToString(), error.ToString());
    }

    [Fact]
    public async Task Stats_show_exact_pending_counts_paused_lanes_and_consumers_online_and_a_stopped_consumer_drops_out()
    {
        var a = await StartConsumerAsync("stats-a");
        await StartConsumerAsync("stats-b");
        await _fleet.Producer.PauseLaneAsync(SessionLane.Generate);
        await TestVhost.EventuallyAsync(() => Task.FromResult(_fleet.Hosts.All(h => h.IsPaused(SessionLane.Generate))), "generate paused on both");
        foreach (var i in Enumerable.Range(1, 7))
            await _fleet.Producer.SubmitTaskAsync(ExternalTask.Create($"held-{i}", SessionLane.Generate));
        Assert.True((await _fleet.Producer.SubmitAndWaitAsync(ExternalTask.Create("done-1", SessionLane.Query), Wait)).Success);

        var stats = await _fleet.Producer.ReadStatsAsync(TimeSpan.FromSeconds(1.5));
        Assert.Equal(["stats-a", "stats-b"], stats.Consumers.Select(c => c.Consumer));
        var generate = stats.Lanes.Single(l => l.Lane == "generate");
        Assert.Equal(7, generate.Pending);
        Assert.Equal(2, generate.PausedOn);
        Assert.Contains("paused by operator", generate.PausedReasons);
        Assert.Equal(2, generate.MaxConcurrency);
        var query = stats.Lanes.Single(l => l.Lane == "query");
        Assert.Equal(0, query.Pending);
        Assert.Equal(1, query.Completed);
        Assert.Equal(8, query.MaxConcurrency);
        Assert.Equal(7, stats.TotalPending);

        await a.StopQuietlyAsync();
        _fleet.Hosts.Remove(a);
        var after = await _fleet.Producer.ReadStatsAsync(TimeSpan.FromSeconds(1.5));
        Assert.Equal(["stats-b"], after.Consumers.Select(c => c.Consumer));
    }

    [Fact]
    public async Task Pause_and_resume_reach_every_consumer_and_a_consumer_started_later_stays_paused()
    {
        var log = new StartLog();
        Action<LaneQueueConsumerBuilder> record = h => h.AddHandler(StartLog.CommandType, log.HandleAsync);
        await StartConsumerAsync("pause-a", handlers: record);
        await StartConsumerAsync("pause-b", handlers: record);
        await _fleet.Producer.PauseLaneAsync(SessionLane.Execute);
        await TestVhost.EventuallyAsync(() => Task.FromResult(_fleet.Hosts.All(h => h.IsPaused(SessionLane.Execute))), "execute paused on both");

        var late = await StartConsumerAsync("pause-late", handlers: record);
        await TestVhost.EventuallyAsync(() => Task.FromResult(late.IsPaused(SessionLane.Execute)), "the late consumer paused execute");
        var execute = BrokerNames.LaneQueue(SessionLane.Execute);
        // A paused lane is left alone at the broker: no consumer on its queue (so nothing can be delivered, however long one waits).
        await TestVhost.EventuallyAsync(async () => await _fleet.Vhost.ConsumersAsync(execute) == 0, "no consumer left on the execute queue");
        Assert.Equal(3u, await _fleet.Vhost.ConsumersAsync(BrokerNames.LaneQueue(SessionLane.Query)));
        var result = await _fleet.Producer.WatchResultAsync("paused-1");
        await _fleet.Producer.SubmitTaskAsync(StartLog.Make("paused-1", SessionLane.Execute, 0));
        Assert.True((await _fleet.Producer.SubmitAndWaitAsync(StartLog.Make("other-lane", SessionLane.Query, 0), Wait)).Success);
        Assert.Equal(0u, await _fleet.Vhost.ConsumersAsync(execute));
        Assert.Equal(1u, await _fleet.Vhost.ReadyAsync(execute));
        Assert.Null(log.StartOf("paused-1"));

        await _fleet.Producer.ResumeLaneAsync(SessionLane.Execute);
        Assert.True((await result.WaitAsync(Wait)).Success);
        await TestVhost.EventuallyAsync(() => Task.FromResult(_fleet.Hosts.All(h => !h.IsPaused(SessionLane.Execute))), "execute resumed on all three");
    }

    [Fact]
    public async Task Lane_pressure_and_idle_events_follow_the_threshold()
    {
        await StartConsumerAsync("pressure", o => o.Queue = o.Queue with { PressureThreshold = 5 });
        var seen = new ConcurrentQueue<string>();
        var factory = new ConnectionFactory { Uri = new Uri(_fleet.Vhost.Url) };
        await using var connection = await factory.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        var queue = (await channel.QueueDeclareAsync("", durable: false, exclusive: true, autoDelete: true)).QueueName;
        await channel.QueueBindAsync(queue, BrokerNames.EventsExchange, "lane.#");

        await _fleet.Producer.PauseLaneAsync(SessionLane.Generate);
        await TestVhost.EventuallyAsync(() => Task.FromResult(_fleet.Hosts[0].IsPaused(SessionLane.Generate)), "generate paused");
        foreach (var i in Enumerable.Range(1, 8))
            await _fleet.Producer.SubmitTaskAsync(ExternalTask.Create($"p-{i}", SessionLane.Generate));
        async Task<bool> SeenAsync(string prefix)
        {
            while (await channel.BasicGetAsync(queue, autoAck: true) is { } message)
            {
                using var json = JsonDocument.Parse(message.Body);
                seen.Enqueue($"{json.RootElement.GetProperty("event").GetString()}:{json.RootElement.GetProperty("lane").GetString()}:{json.RootElement.GetProperty("depth").GetInt64()}");
            }
            return seen.Any(e => e.StartsWith(prefix, StringComparison.Ordinal));
        }
        await TestVhost.EventuallyAsync(() => SeenAsync("lane.pressure:generate"), "lane.pressure for generate");
        await _fleet.Producer.ResumeLaneAsync(SessionLane.Generate);
        await TestVhost.EventuallyAsync(() => SeenAsync("lane.idle:generate"), "lane.idle for generate once it drained");
        Assert.StartsWith("lane.pressure:generate:", seen.First(), StringComparison.Ordinal);
        Assert.True(long.Parse(seen.First().Split(':')[2], System.Globalization.CultureInfo.InvariantCulture) >= 5);
        Assert.Equal("lane.idle:generate:0", seen.Last());
    }

    [Fact]
    public async Task Regression_a_consumer_started_while_a_lane_is_paused_still_runs_its_lane_gate()
    {
        // The gate once waited for a "healthy" bus, which a paused (stopped) endpoint never is: it never ran.
        await StartConsumerAsync("first");
        await _fleet.Producer.PauseLaneAsync(SessionLane.Generate);
        var late = await StartConsumerAsync("started-paused");
        await TestVhost.EventuallyAsync(() => Task.FromResult(late.IsPaused(SessionLane.Generate)), "the late consumer paused generate");
        await _fleet.Producer.PauseLaneAsync(SessionLane.Query);
        // Both consumers must have applied the pause before the tasks go out, or the first one may still run them (the
        // fleet command reaches each consumer on its own time) and the depth never reaches 3.
        await TestVhost.EventuallyAsync(() => Task.FromResult(_fleet.Hosts.All(h => h.IsPaused(SessionLane.Query))), "query paused on both consumers");
        foreach (var i in Enumerable.Range(1, 3))
            await _fleet.Producer.SubmitTaskAsync(ExternalTask.Create($"waiting-{i}", SessionLane.Query));
        await TestVhost.EventuallyAsync(() => Task.FromResult(late.Gate().LastReady[(int)SessionLane.Query] == 3), "the late consumer's gate reads the query lane's depth");
        await _fleet.Producer.ResumeLaneAsync(SessionLane.Query);
    }

    [Fact]
    public async Task A_pause_replayed_at_start_stops_the_lane_endpoint_even_with_the_gate_off()
    {
        // Replayed pauses were once applied by the lane gate: a consumer with the gate off kept consuming a paused lane
        // (putting each task back), instead of leaving the queue alone.
        await StartConsumerAsync("first");
        await _fleet.Producer.PauseLaneAsync(SessionLane.Generate);
        var generate = BrokerNames.LaneQueue(SessionLane.Generate);
        await TestVhost.EventuallyAsync(async () => await _fleet.Vhost.ConsumersAsync(generate) == 0, "the first consumer left the generate queue");
        var gateOff = await StartConsumerAsync("gate-off", o => o.Gate.Enabled = false);
        await TestVhost.EventuallyAsync(async () => await _fleet.Vhost.ConsumersAsync(BrokerNames.LaneQueue(SessionLane.Query)) == 2, "both consume the query lane");
        // Every other lane endpoint of the gate-off consumer is up (so its start is over), and generate is not among them.
        foreach (var lane in new[] { SessionLane.Control, SessionLane.Execute })
            await TestVhost.EventuallyAsync(async () => await _fleet.Vhost.ConsumersAsync(BrokerNames.LaneQueue(lane)) == 2, $"both consume {lane.WireName()}");
        Assert.True(gateOff.IsPaused(SessionLane.Generate));
        Assert.Equal(0u, await _fleet.Vhost.ConsumersAsync(generate));

        await _fleet.Producer.ResumeLaneAsync(SessionLane.Generate);
        await TestVhost.EventuallyAsync(async () => await _fleet.Vhost.ConsumersAsync(generate) == 2, "both consume generate again");
        Assert.True((await _fleet.Producer.SubmitAndWaitAsync(ExternalTask.Create("after-resume", SessionLane.Generate), Wait)).Success);
    }

    [Fact]
    public async Task Metrics_count_exactly_what_happened()
    {
        // Other test collections run in parallel in this process and record on meters of the same name: count only this
        // consumer's meter (the one its IMeterFactory created) and the producer's submits made from this test's own flow.
        var host = await StartConsumerAsync("metrics", o => o.Queue = o.Queue with { RetryPolicy = new RetryPolicy { Strategy = RetryStrategy.Fixed, MaxRetries = 1, FixedDelayMs = 50 } });
        var consumerMeters = host.Services.GetRequiredService<IMeterFactory>();
        var thisTest = new AsyncLocal<bool> { Value = true };
        bool Ours(Instrument instrument) => instrument.Meter.Scope == consumerMeters || (instrument.Meter == LaneQueueTelemetry.ProducerMeter && thisTest.Value);
        var counts = new ConcurrentDictionary<(string Name, string Lane), long>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == LaneQueueTelemetry.Name)
                l.EnableMeasurementEvents(instrument);
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            if (Ours(instrument) && instrument is Counter<long> && tags.ToArray().FirstOrDefault(t => t.Key == "lane").Value is string lane)
                counts.AddOrUpdate((instrument.Name, lane), value, (_, v) => v + value);
        });
        listener.SetMeasurementEventCallback<double>((instrument, _, tags, _) =>
        {
            if (Ours(instrument) && tags.ToArray().FirstOrDefault(t => t.Key == "lane").Value is string lane)
                counts.AddOrUpdate((instrument.Name, lane), 1, (_, v) => v + 1);
        });
        listener.Start();

        foreach (var i in Enumerable.Range(1, 3))
            Assert.True((await _fleet.Producer.SubmitAndWaitAsync(ExternalTask.Create($"m-{i}", SessionLane.Query), Wait)).Success);
        Assert.False((await _fleet.Producer.SubmitAndWaitAsync(ExternalTask.Create("m-fail", SessionLane.Execute, null, FailHandler.CommandType), Wait)).Success);
        // The consumer records a task's metrics after it publishes the result: wait for them, then compare exactly.
        long Count(string name, string lane) => counts.GetValueOrDefault((name, lane));
        await TestVhost.EventuallyAsync(() => Task.FromResult(
            Count(LaneQueueTelemetry.Completed, "query") >= 3 && Count(LaneQueueTelemetry.Latency, "query") >= 3 && Count(LaneQueueTelemetry.WaitTime, "query") >= 3
            && Count(LaneQueueTelemetry.Failed, "execute") >= 2 && Count(LaneQueueTelemetry.Retried, "execute") >= 1
            && Count(LaneQueueTelemetry.DeadLettered, "execute") >= 1), "the metrics of the four tasks", 30);

        Assert.Equal(4, counts.GetValueOrDefault((LaneQueueTelemetry.Submitted, "query")) + counts.GetValueOrDefault((LaneQueueTelemetry.Submitted, "execute")));
        Assert.Equal(3, counts.GetValueOrDefault((LaneQueueTelemetry.Completed, "query")));
        Assert.Equal(3, counts.GetValueOrDefault((LaneQueueTelemetry.Latency, "query")));
        Assert.Equal(3, counts.GetValueOrDefault((LaneQueueTelemetry.WaitTime, "query")));
        Assert.Equal(2, counts.GetValueOrDefault((LaneQueueTelemetry.Failed, "execute")));
        Assert.Equal(1, counts.GetValueOrDefault((LaneQueueTelemetry.Retried, "execute")));
        Assert.Equal(1, counts.GetValueOrDefault((LaneQueueTelemetry.DeadLettered, "execute")));
        Assert.Equal(0, counts.GetValueOrDefault((LaneQueueTelemetry.Completed, "execute")));
    }

    [Fact]
    public async Task A_trace_spans_producer_and_consumer_and_continues_a_foreign_traceparent()
    {
        var activities = new ConcurrentQueue<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == LaneQueueTelemetry.Name,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = activities.Enqueue,
        };
        ActivitySource.AddActivityListener(listener);
        await StartConsumerAsync("traces");

        Assert.True((await _fleet.Producer.SubmitAndWaitAsync(ExternalTask.Create("traced-1", SessionLane.Query), Wait)).Success);
        await TestVhost.EventuallyAsync(() => Task.FromResult(activities.Any(a => a.Kind == ActivityKind.Consumer && (string?)a.GetTagItem("lanequeue.task_id") == "traced-1")), "the consumer span");
        var produced = activities.Single(a => a.Kind == ActivityKind.Producer && (string?)a.GetTagItem("lanequeue.task_id") == "traced-1");
        var consumed = activities.Single(a => a.Kind == ActivityKind.Consumer && (string?)a.GetTagItem("lanequeue.task_id") == "traced-1");
        Assert.Equal(produced.TraceId, consumed.TraceId);
        Assert.Equal(produced.SpanId, consumed.ParentSpanId);

        // A producer in another language sets the W3C header by hand.
        const string traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
        var factory = new ConnectionFactory { Uri = new Uri(_fleet.Vhost.Url) };
        await using var connection = await factory.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        await channel.BasicPublishAsync(BrokerNames.TasksExchange, "query", mandatory: false,
            new BasicProperties { Headers = new Dictionary<string, object?> { ["traceparent"] = $"00-{traceId}-00f067aa0ba902b7-01" } },
            Encoding.UTF8.GetBytes("""{"id":"python-traced","lane":"query","payload":{}}"""));
        await TestVhost.EventuallyAsync(() => Task.FromResult(activities.Any(a => (string?)a.GetTagItem("lanequeue.task_id") == "python-traced")), "the foreign task's span");
        Assert.Equal(traceId, activities.Single(a => (string?)a.GetTagItem("lanequeue.task_id") == "python-traced").TraceId.ToHexString());
    }

    [Fact]
    public async Task Health_and_prometheus_endpoints_answer_over_http()
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Test" });
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.AddLaneQueueConsumer(o =>
        {
            o.RabbitMqUrl = _fleet.Vhost.Url;
            o.ConsumerName = "web";
        });
        builder.AddLaneQueueTelemetry();
        var app = builder.Build();
        app.MapLaneQueueEndpoints();
        await app.StartAsync();
        try
        {
            var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            using var http = new HttpClient { BaseAddress = new Uri(address) };
            Assert.Equal("Healthy", await http.GetStringAsync("/health/live"));
            await TestVhost.EventuallyAsync(async () => (await http.GetAsync("/health/ready")).IsSuccessStatusCode, "ready");

            await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = _fleet.Vhost.Url });
            Assert.True((await producer.SubmitAndWaitAsync(ExternalTask.Create("scraped-1", SessionLane.Control), Wait)).Success);
            string metrics = "";
            await TestVhost.EventuallyAsync(async () => (metrics = await http.GetStringAsync("/metrics")).Contains("commands_completed", StringComparison.Ordinal), "commands_completed in /metrics");
            Assert.Contains("lane=\"control\"", metrics, StringComparison.Ordinal);
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }

    [Fact]
    public async Task The_CLI_stamps_created_at_when_it_publishes_not_before_it_connects()
    {
        // A broker that takes ConnectDelay to answer a new connection; no consumer, so the tasks stay in their lane queue.
        var connectDelay = TimeSpan.FromSeconds(1.5);
        await using var proxy = new Faults.TcpProxy(new Uri(_fleet.Vhost.Url).Port) { ConnectDelay = connectDelay };
        var url = new UriBuilder(_fleet.Vhost.Url) { Host = "127.0.0.1", Port = proxy.Port }.Uri.ToString();

        var invoked = new Dictionary<string, DateTimeOffset>();
        invoked["stamp-plain"] = DateTimeOffset.UtcNow;
        Assert.Equal(0, (await CliAtAsync(url, "submit", "--lane", "query", "--id", "stamp-plain")).Code);
        invoked["stamp-wait"] = DateTimeOffset.UtcNow;
        var waited = await CliAtAsync(url, "submit", "--lane", "query", "--id", "stamp-wait", "--wait", "0.2");
        Assert.Equal(4, waited.Code); // no consumer: no result in time, the task stays stored
        Assert.Contains("no result for task 'stamp-wait' within 0.2 s", waited.Err, StringComparison.Ordinal);

        var messages = await _fleet.Vhost.GetMessagesAsync(BrokerNames.LaneQueue(SessionLane.Query));
        Assert.Equal(2, messages.Count);
        foreach (var message in messages)
        {
            using var task = JsonDocument.Parse(message.GetProperty("payload").GetString()!);
            var id = task.RootElement.GetProperty("id").GetString()!;
            var createdAt = task.RootElement.GetProperty("created_at").GetDateTimeOffset();
            // Stamped before connecting, created_at is within a few ms of the invocation; stamped at publish, after the delay.
            Assert.True(createdAt - invoked[id] >= connectDelay - TimeSpan.FromMilliseconds(50),
                $"task {id}: created_at {createdAt:O} is {(createdAt - invoked[id]).TotalMilliseconds:0} ms after the CLI was invoked, " +
                $"before its connection (held {connectDelay.TotalMilliseconds:0} ms) could have opened");
        }
    }

    [Fact]
    public async Task The_CLI_operates_the_fleet_end_to_end_with_json_and_exit_codes()
    {
        await StartConsumerAsync("cli", o => o.Queue = o.Queue with { RetryPolicy = new RetryPolicy { Strategy = RetryStrategy.None } });

        var submit = await CliAsync("submit", "--lane", "query", "--id", "cli-1", "--payload", """{"q":1}""", "--wait", "30", "--json");
        Assert.Equal(0, submit.Code);
        using (var result = JsonDocument.Parse(submit.Out))
            Assert.Equal("completed", result.RootElement.GetProperty("status").GetString());

        var bulk = await CliAsync("submit", "--lane", "execute", "--id", "bulk", "--count", "3", "--json");
        Assert.Equal(0, bulk.Code);
        using (var submitted = JsonDocument.Parse(bulk.Out))
            Assert.Equal(3, submitted.RootElement.GetProperty("submitted").GetInt32());

        Assert.Equal(5, (await CliAsync("submit", "--lane", "query", "--id", "cli-fail", "--command-type", "fail", "--wait", "30")).Code);
        Assert.Equal(2, (await CliAsync("submit", "--lane", "urgent", "--id", "x")).Code);
        Assert.Equal(2, (await CliAsync("submit", "--lane", "query", "--payload", "{not json")).Code);
        Assert.Equal(4, (await CliAsync("wait", "--id", "never-submitted", "--timeout", "1")).Code);

        await TestVhost.EventuallyAsync(async () =>
        {
            try
            {
                return (await _fleet.Producer.DeadLetters.ListAsync(DeadLetters.QueueOf(SessionLane.Query))).Count == 1;
            }
            catch (RabbitMQ.Client.Exceptions.OperationInterruptedException)
            {
                return false; // the dead-letter queue appears with its first message
            }
        }, "cli-fail dead-lettered", 30);
        var list = await CliAsync("dead-letters", "list", "--lane", "query", "--json");
        Assert.Equal(0, list.Code);
        using (var letters = JsonDocument.Parse(list.Out))
            Assert.Equal("cli-fail", Assert.Single(letters.RootElement.EnumerateArray()).GetProperty("task_id").GetString());
        Assert.Equal(2, (await CliAsync("dead-letters", "redrive", "--lane", "query", "--id", "no-such-task")).Code);
        var purge = await CliAsync("dead-letters", "purge", "--lane", "query", "--json");
        Assert.Equal(0, purge.Code);
        Assert.Contains("\"purged\":1", purge.Out, StringComparison.Ordinal);

        Assert.Equal(0, (await CliAsync("pause", "--lane", "generate")).Code);
        await TestVhost.EventuallyAsync(() => Task.FromResult(_fleet.Hosts[0].IsPaused(SessionLane.Generate)), "generate paused by the CLI");
        var stats = await CliAsync("stats", "--json", "--listen", "1.5");
        Assert.Equal(0, stats.Code);
        using (var parsed = JsonDocument.Parse(stats.Out))
        {
            Assert.Equal("cli", Assert.Single(parsed.RootElement.GetProperty("consumers").EnumerateArray()).GetProperty("consumer").GetString());
            Assert.Equal(1, parsed.RootElement.GetProperty("lanes").EnumerateArray().Single(l => l.GetProperty("lane").GetString() == "generate").GetProperty("paused_on").GetInt32());
        }
        var table = await CliAsync("stats", "--listen", "1.5");
        Assert.Contains("consumers online: 1 (cli)", table.Out, StringComparison.Ordinal);
        Assert.Contains("paused by operator", table.Out, StringComparison.Ordinal);
        Assert.Equal(0, (await CliAsync("resume", "--lane", "generate")).Code);

        Assert.Equal(0, (await CliAsync("handler", "set", "--lane", "execute", "--mode", "hybrid")).Code);
        await TestVhost.EventuallyAsync(async () => (await _fleet.Producer.ReadStatsAsync(TimeSpan.FromSeconds(1))).Lanes.Single(l => l.Lane == "execute").HandlerMode == "hybrid", "execute in hybrid mode");
        Assert.Equal(2, (await CliAsync("handler", "set", "--lane", "execute", "--mode", "sideways")).Code);

        Assert.Equal(0, (await CliAsync("cancel", "--id", "anything")).Code);
        Assert.Equal(2, (await CliAsync("cancel")).Code);

        var unreachable = new StringWriter();
        var code = await ProducerCli.RunAsync(["stats", "--url", "amqp://guest:guest@127.0.0.1:1/"], new InvocationConfiguration { Output = new StringWriter(), Error = unreachable });
        Assert.Equal(3, code);
        Assert.Contains("scripts/broker-up.sh", unreachable.ToString(), StringComparison.Ordinal);

        Assert.Equal(0, (await CliAsync("drain", "--consumer", "cli")).Code);
        var lifetime = _fleet.Hosts[0].Services.GetRequiredService<IHostApplicationLifetime>();
        await TestVhost.EventuallyAsync(() => Task.FromResult(lifetime.ApplicationStopping.IsCancellationRequested), "the consumer drains");
    }
}
