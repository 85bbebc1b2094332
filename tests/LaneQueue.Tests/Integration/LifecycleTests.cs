using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using LaneQueue.Consumer;
using LaneQueue.Contracts;
using LaneQueue.Producer;
using LaneQueue.Tests.Broker;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using RabbitMQ.Client;

namespace LaneQueue.Tests.Integration;

/// <summary>Every task ends in exactly one known state: results, timeouts, retries, dead letters, cancellation, preemption, modes.</summary>
[Collection(BrokerCollection.Name)]
public sealed class LifecycleTests(BrokerFixture broker) : IAsyncLifetime
{
    static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);
    readonly ConcurrentQueue<TaskEvent> _events = new();
    TestFleet _fleet = null!;
    IAsyncDisposable? _watch;

    public async Task InitializeAsync() => _fleet = new TestFleet(await broker.CreateVhostAsync());

    public async Task DisposeAsync()
    {
        if (_watch is not null)
            await _watch.DisposeAsync();
        await _fleet.DisposeAsync();
    }

    async Task<IHost> StartConsumerAsync(Action<LaneQueueOptions>? configure = null, Action<LaneQueueConsumerBuilder>? handlers = null, string? name = null)
    {
        var host = await _fleet.StartConsumerAsync(name ?? $"consumer-{_fleet.Hosts.Count}", configure, handlers);
        _watch ??= await _fleet.Producer.WatchEventsAsync(e =>
        {
            _events.Enqueue(e);
            return Task.CompletedTask;
        });
        return host;
    }

    IEnumerable<string> EventsOf(string taskId) => _events.Where(e => e.TaskId == taskId).Select(e => e.Event);

    Task EventuallyEventAsync(string taskId, string name, int count = 1) =>
        TestVhost.EventuallyAsync(() => Task.FromResult(EventsOf(taskId).Count(e => e == name) >= count), $"{count} x {name} for {taskId}");

    static RetryPolicy Fixed(int retries, int delayMs) => new() { Strategy = RetryStrategy.Fixed, MaxRetries = retries, FixedDelayMs = delayMs };

    [Fact]
    public async Task Every_transition_is_an_event_observable_by_producers()
    {
        await StartConsumerAsync();
        var result = await _fleet.Producer.SubmitAndWaitAsync(ExternalTask.Create("ev-1", SessionLane.Query, new { n = 1 }), Wait);
        Assert.True(result.Success);
        Assert.Equal(1, result.Attempts);
        await EventuallyEventAsync("ev-1", TaskEvent.Completed);
        Assert.Equal([TaskEvent.Started, TaskEvent.Completed], EventsOf("ev-1"));
        Assert.All(_events.Where(e => e.TaskId == "ev-1"), e => Assert.Equal("consumer-0", e.Consumer));
    }

    [Fact]
    public async Task Timeout_fires_then_the_task_is_retried_then_dead_lettered()
    {
        await StartConsumerAsync(o => o.Queue = o.Queue with { RetryPolicy = Fixed(retries: 2, delayMs: 100) });
        var result = await _fleet.Producer.SubmitAndWaitAsync(
            ExternalTask.Create("slow-timeout", SessionLane.Execute, new { ms = 5000 }, "sleep") with { TimeoutMs = 200 }, Wait);

        Assert.False(result.Success);
        Assert.Equal(TaskStatuses.TimedOut, result.Status);
        Assert.Equal(3, result.Attempts);
        Assert.Contains("timed out after 200 ms", result.Error, StringComparison.Ordinal);
        await EventuallyEventAsync("slow-timeout", TaskEvent.DeadLettered);
        await TestVhost.EventuallyAsync(async () => await _fleet.Vhost.ReadyAsync(DeadLetters.QueueOf(SessionLane.Execute)) == 1, "the dead letter");
        Assert.Equal(3, EventsOf("slow-timeout").Count(e => e == TaskEvent.Timeout));
        Assert.Equal(2, EventsOf("slow-timeout").Count(e => e == TaskEvent.Retry));

        var dead = await _fleet.Producer.DeadLetters.ListAsync(DeadLetters.QueueOf(SessionLane.Execute));
        var letter = Assert.Single(dead);
        Assert.Equal("slow-timeout", letter.TaskId);
        Assert.Equal(3, letter.Attempts);
        Assert.Contains("timed out", letter.Reason, StringComparison.Ordinal);
        Assert.Contains("timed out", letter.LastError, StringComparison.Ordinal);
        Assert.NotNull(letter.At);
    }

    [Fact]
    public async Task A_waiting_retry_holds_no_slot_so_the_lane_keeps_serving()
    {
        // generate runs one task at a time per consumer; the failing task waits 4 s for its retry outside the consumer.
        var attempts = 0;
        await StartConsumerAsync(o => o.Queue = o.Queue with { RetryPolicy = Fixed(retries: 1, delayMs: 4000) },
            h => h.AddHandler("flaky", _ => Interlocked.Increment(ref attempts) == 1 ? throw new InvalidOperationException("first try fails") : Task.FromResult<object?>("ok")));
        var flaky = await _fleet.Producer.WatchResultAsync("flaky-1");
        await _fleet.Producer.SubmitTaskAsync(ExternalTask.Create("flaky-1", SessionLane.Generate, null, "flaky"));
        await EventuallyEventAsync("flaky-1", TaskEvent.Retry);

        var others = await Task.WhenAll(Enumerable.Range(1, 3).Select(i =>
            _fleet.Producer.SubmitAndWaitAsync(ExternalTask.Create($"other-{i}", SessionLane.Generate, new { i }), Wait)));
        Assert.All(others, r => Assert.True(r.Success));
        Assert.False(flaky.IsCompleted, "the other generate tasks must finish while the retry still waits");
        // It waits in the delay tree (quorum hop queues that hand it on at least once), not in a classic holding queue (1.3).
        await TestVhost.EventuallyAsync(async () => await _fleet.Vhost.ReadyInDelayTreeAsync() == 1, "the retry waiting in the delay tree", 10);
        Assert.Null(await _fleet.Vhost.DeclarePassiveAsync(BrokerNames.RetryQueue(SessionLane.Generate, TimeSpan.FromSeconds(4))));

        var final = await flaky.WaitAsync(Wait);
        Assert.True(final.Success);
        Assert.Equal(SessionLane.Generate, final.Lane);
        Assert.Equal(2, final.Attempts);
    }

    [Fact]
    public async Task Dead_letters_can_be_listed_redriven_one_or_all_and_purged()
    {
        var healthy = false;
        await StartConsumerAsync(o => o.Queue = o.Queue with { RetryPolicy = new RetryPolicy { Strategy = RetryStrategy.None } },
            h => h.AddHandler("flaky", _ => Volatile.Read(ref healthy) ? Task.FromResult<object?>("ok") : throw new InvalidOperationException("backend down")));
        var queue = DeadLetters.QueueOf(SessionLane.Query);
        foreach (var i in Enumerable.Range(1, 4))
            Assert.False((await _fleet.Producer.SubmitAndWaitAsync(ExternalTask.Create($"dl-{i}", SessionLane.Query, null, "flaky"), Wait)).Success);
        await TestVhost.EventuallyAsync(async () => await _fleet.Vhost.ReadyAsync(queue) == 4, "4 dead letters");

        var listed = await _fleet.Producer.DeadLetters.ListAsync(queue);
        Assert.Equal(["dl-1", "dl-2", "dl-3", "dl-4"], listed.Select(l => l.TaskId).Order());
        Assert.All(listed, l => Assert.Contains("backend down", l.Reason, StringComparison.Ordinal));
        Assert.Equal(4u, await _fleet.Vhost.ReadyAsync(queue)); // listing removes nothing

        Volatile.Write(ref healthy, true);
        var one = await _fleet.Producer.WatchResultAsync("dl-2");
        Assert.Equal(1, await _fleet.Producer.DeadLetters.RedriveAsync(queue, "dl-2"));
        Assert.True((await one.WaitAsync(Wait)).Success);
        Assert.Equal(3u, await _fleet.Vhost.ReadyAsync(queue));

        var rest = await Task.WhenAll(new[] { "dl-1", "dl-3" }.Select(id => _fleet.Producer.WatchResultAsync(id)));
        Assert.Equal(3, await _fleet.Producer.DeadLetters.RedriveAsync(queue));
        Assert.All(await Task.WhenAll(rest.Select(r => r.WaitAsync(Wait))), r => Assert.True(r.Success));

        Volatile.Write(ref healthy, false);
        Assert.False((await _fleet.Producer.SubmitAndWaitAsync(ExternalTask.Create("dl-5", SessionLane.Query, null, "flaky"), Wait)).Success);
        await TestVhost.EventuallyAsync(async () => await _fleet.Vhost.ReadyAsync(queue) == 1, "1 dead letter");
        Assert.Equal(1u, await _fleet.Producer.DeadLetters.PurgeAsync(queue));
        Assert.Equal(0u, await _fleet.Vhost.ReadyAsync(queue));
    }

    [Fact]
    public async Task Cancel_a_running_task_and_a_waiting_one_and_a_session()
    {
        var log = new StartLog();
        await StartConsumerAsync(handlers: h => h.AddHandler(StartLog.CommandType, log.HandleAsync));
        var results = new Dictionary<string, Task<ExternalTaskResult>>
        {
            ["long-1"] = await _fleet.Producer.WatchResultAsync("long-1"),
            ["long-2"] = await _fleet.Producer.WatchResultAsync("long-2"),
        };
        await _fleet.Producer.SubmitTaskAsync(StartLog.Make("long-1", SessionLane.Generate, 60_000));
        await _fleet.Producer.SubmitTaskAsync(StartLog.Make("long-2", SessionLane.Generate, 60_000));
        // generate's limit is 1 per process: one of the two runs, the other waits. Which one is not fixed: the consumer reads
        // deliveries concurrently, so two delivered together reach the lane's turn in either order.
        await TestVhost.EventuallyAsync(() => Task.FromResult(log.Starts.Any(s => s.Id.StartsWith("long-", StringComparison.Ordinal))), "a long task running");
        var runningId = log.Starts.First(s => s.Id.StartsWith("long-", StringComparison.Ordinal)).Id;
        var waitingId = runningId == "long-1" ? "long-2" : "long-1";

        await _fleet.Producer.CancelTaskAsync(waitingId);
        await _fleet.Producer.CancelTaskAsync(runningId);

        var cancelledRun = await results[runningId].WaitAsync(Wait);
        Assert.Equal(TaskStatuses.Cancelled, cancelledRun.Status);
        var cancelledWait = await results[waitingId].WaitAsync(Wait);
        Assert.Equal(TaskStatuses.Cancelled, cancelledWait.Status);
        Assert.Null(log.StartOf(waitingId));
        Assert.DoesNotContain(runningId, log.Finished);

        // A session: every task of it created before the cancel ends cancelled, later ones run.
        var sessionTask = StartLog.Make("s-1", SessionLane.Generate, 60_000) with { SessionId = "session-a" };
        var s1 = await _fleet.Producer.WatchResultAsync("s-1");
        await _fleet.Producer.SubmitTaskAsync(sessionTask);
        await TestVhost.EventuallyAsync(() => Task.FromResult(log.StartOf("s-1") is not null), "s-1 running");
        await _fleet.Producer.CancelSessionAsync("session-a");
        Assert.Equal(TaskStatuses.Cancelled, (await s1.WaitAsync(Wait)).Status);
        var later = await _fleet.Producer.SubmitAndWaitAsync(StartLog.Make("s-2", SessionLane.Generate, 0) with { SessionId = "session-a" }, Wait);
        Assert.True(later.Success);
    }

    [Fact]
    public async Task A_consumer_started_after_a_cancel_still_skips_the_task()
    {
        var log = new StartLog();
        await StartConsumerAsync(handlers: h => h.AddHandler(StartLog.CommandType, log.HandleAsync));
        await _fleet.Hosts[0].StopQuietlyAsync();
        _fleet.Hosts.Clear();
        var result = await _fleet.Producer.WatchResultAsync("parked-1");
        await _fleet.Producer.SubmitTaskAsync(StartLog.Make("parked-1", SessionLane.Query, 0));
        await _fleet.Producer.CancelTaskAsync("parked-1");

        await StartConsumerAsync(handlers: h => h.AddHandler(StartLog.CommandType, log.HandleAsync), name: "late-consumer");
        Assert.Equal(TaskStatuses.Cancelled, (await result.WaitAsync(Wait)).Status);
        Assert.Null(log.StartOf("parked-1"));
    }

    [Fact]
    public async Task A_preemptible_generate_task_yields_to_a_query_task_and_resumes_from_its_checkpoint()
    {
        const int steps = 20;
        var done = new ConcurrentQueue<int>();
        var order = new ConcurrentQueue<string>();
        await StartConsumerAsync(o => o.SlotBudget = 1, h =>
        {
            h.AddHandler("count", async context =>
            {
                var from = context.Checkpoint is { } checkpoint ? checkpoint.GetProperty("next").GetInt32() : 0;
                order.Enqueue(from == 0 ? "count-start" : $"count-resume-{from}");
                for (var step = from; step < steps; step++)
                {
                    if (context.YieldRequested.IsCancellationRequested)
                        return TaskContext.Yield(new { next = step });
                    await Task.Delay(100, context.CancellationToken);
                    done.Enqueue(step);
                }
                return new { counted = steps };
            });
            h.AddHandler("mark", context =>
            {
                order.Enqueue("query");
                return Task.FromResult<object?>(null);
            });
        });

        var counting = await _fleet.Producer.WatchResultAsync("count-1");
        await _fleet.Producer.SubmitTaskAsync(ExternalTask.Create("count-1", SessionLane.Generate, null, "count") with { Preemptible = true });
        await TestVhost.EventuallyAsync(() => Task.FromResult(done.Count >= 3), "the count is under way");
        var query = await _fleet.Producer.SubmitAndWaitAsync(ExternalTask.Create("urgent-1", SessionLane.Query, null, "mark"), Wait);
        Assert.True(query.Success);

        var counted = await counting.WaitAsync(Wait);
        Assert.True(counted.Success);
        Assert.Equal(steps, counted.Result.GetProperty("counted").GetInt32());
        Assert.Equal(Enumerable.Range(0, steps), done.Order());
        Assert.Equal(steps, done.Distinct().Count());
        var sequence = order.ToList();
        Assert.Equal("count-start", sequence[0]);
        Assert.Equal("query", sequence[1]);
        Assert.StartsWith("count-resume-", sequence[2], StringComparison.Ordinal);
        Assert.Contains(TaskEvent.Preempted, EventsOf("count-1"));
    }

    [Fact]
    public async Task A_task_that_ignores_the_yield_request_simply_finishes()
    {
        var order = new ConcurrentQueue<string>();
        await StartConsumerAsync(o => o.SlotBudget = 1, h =>
        {
            // Ignores YieldRequested: runs its 1.5 s to the end.
            h.AddHandler("stubborn", async context =>
            {
                order.Enqueue("stubborn-start");
                await Task.Delay(1500, context.CancellationToken);
                order.Enqueue("stubborn-end");
                return null;
            });
            h.AddHandler("mark", _ =>
            {
                order.Enqueue("query-start");
                return Task.FromResult<object?>(null);
            });
        });
        var slow = await _fleet.Producer.WatchResultAsync("stubborn-1");
        await _fleet.Producer.SubmitTaskAsync(ExternalTask.Create("stubborn-1", SessionLane.Generate, null, "stubborn") with { Preemptible = true });
        await TestVhost.EventuallyAsync(() => Task.FromResult(order.Contains("stubborn-start")), "the stubborn task running");
        var query = await _fleet.Producer.SubmitAndWaitAsync(ExternalTask.Create("q-after", SessionLane.Query, null, "mark"), Wait);
        Assert.True(query.Success);
        var result = await slow.WaitAsync(Wait);
        Assert.True(result.Success);
        // The one slot is given back only when the stubborn handler has returned: the query's handler ran after it.
        Assert.Equal(["stubborn-start", "stubborn-end", "query-start"], order);
        Assert.DoesNotContain(TaskEvent.Preempted, EventsOf("stubborn-1"));
    }

    [Fact]
    public async Task External_mode_is_completed_by_a_raw_AMQP_worker_and_times_out_when_nobody_completes()
    {
        await StartConsumerAsync(o => o.Queue = o.Queue with
        {
            LaneHandlers = new() { [SessionLane.Execute] = new LaneHandlerConfig { Mode = TaskHandlerMode.External, TimeoutMs = 1500 } },
            RetryPolicy = new RetryPolicy { Strategy = RetryStrategy.None },
        });

        // A worker in "any language": plain AMQP, no LaneQueue library.
        var factory = new ConnectionFactory { Uri = new Uri(_fleet.Vhost.Url) };
        await using var connection = await factory.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        var inbox = (await channel.QueueDeclareAsync("", durable: false, exclusive: true, autoDelete: true)).QueueName;
        await channel.QueueBindAsync(inbox, BrokerNames.ExternalExchange, "execute");

        var result = _fleet.Producer.SubmitAndWaitAsync(ExternalTask.Create("ext-1", SessionLane.Execute, new { job = "resize" }), Wait);
        BasicGetResult? announced = null;
        await TestVhost.EventuallyAsync(async () => (announced = await channel.BasicGetAsync(inbox, autoAck: true)) is not null, "the external announcement");
        using (var task = JsonDocument.Parse(announced!.Body))
        {
            Assert.Equal("ext-1", task.RootElement.GetProperty("id").GetString());
            Assert.Equal("resize", task.RootElement.GetProperty("payload").GetProperty("job").GetString());
        }
        await channel.BasicPublishAsync(BrokerNames.ExternalCompletionsExchange, "ext-1", mandatory: false, new BasicProperties(),
            Encoding.UTF8.GetBytes("""{"task_id":"ext-1","success":true,"result":{"resized":true}}"""));
        var completed = await result;
        Assert.True(completed.Success);
        Assert.True(completed.Result.GetProperty("resized").GetBoolean());

        var abandoned = await _fleet.Producer.SubmitAndWaitAsync(ExternalTask.Create("ext-2", SessionLane.Execute), Wait);
        Assert.Equal(TaskStatuses.TimedOut, abandoned.Status);
        await TestVhost.EventuallyAsync(async () => await _fleet.Vhost.ReadyAsync(DeadLetters.QueueOf(SessionLane.Execute)) == 1, "the dead letter");
        Assert.Contains("ext-2", (await _fleet.Producer.DeadLetters.ListAsync(DeadLetters.QueueOf(SessionLane.Execute))).Select(d => d.TaskId));
        // Announcements nobody took from the durable queue of external work expire at their deadline.
        await TestVhost.EventuallyAsync(async () => await _fleet.Vhost.ReadyAsync(BrokerNames.ExternalQueue(SessionLane.Execute)) == 0, "expired announcements");
    }

    [Fact]
    public async Task Hybrid_mode_runs_here_and_announces_the_task()
    {
        await StartConsumerAsync(o => o.Queue = o.Queue with
        {
            LaneHandlers = new() { [SessionLane.Query] = new LaneHandlerConfig { Mode = TaskHandlerMode.Hybrid } },
        });
        var factory = new ConnectionFactory { Uri = new Uri(_fleet.Vhost.Url) };
        await using var connection = await factory.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        var inbox = (await channel.QueueDeclareAsync("", durable: false, exclusive: true, autoDelete: true)).QueueName;
        await channel.QueueBindAsync(inbox, BrokerNames.ExternalExchange, "query.#"); // Hybrid notices: query.hybrid

        var result = await _fleet.Producer.SubmitAndWaitAsync(ExternalTask.Create("hy-1", SessionLane.Query, new { x = 1 }), Wait);
        Assert.True(result.Success);
        Assert.Equal(1, result.Result.GetProperty("x").GetInt32());
        Assert.NotNull(await channel.BasicGetAsync(inbox, autoAck: true));
        Assert.Contains(TaskEvent.ExternalPending, EventsOf("hy-1"));
        Assert.Equal(0u, await _fleet.Vhost.ReadyAsync(BrokerNames.ExternalQueue(SessionLane.Query))); // a notice, not work for a worker
    }

    [Fact]
    public async Task A_task_id_submitted_twice_runs_once_across_the_fleet()
    {
        var log = new StartLog();
        // Fleet-wide de-duplication is opt-in (two deliveries per task per consumer). The first consumer takes one query at a
        // time, so the copy submitted while it runs goes to the second consumer, which knows of the run only from the fleet.
        await StartConsumerAsync(o =>
        {
            o.FleetDeduplication = true;
            o.Queue = o.Queue with { QueryMaxConcurrency = 1 };
        }, h => h.AddHandler(StartLog.CommandType, log.HandleAsync));
        await StartConsumerAsync(o => o.FleetDeduplication = true, h => h.AddHandler(StartLog.CommandType, log.HandleAsync));
        var results = new ConcurrentQueue<ExternalTaskResult>();
        var factory = new ConnectionFactory { Uri = new Uri(_fleet.Vhost.Url) };
        await using var connection = await factory.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        var replies = (await channel.QueueDeclareAsync("", durable: false, exclusive: true, autoDelete: true)).QueueName;
        await channel.QueueBindAsync(replies, BrokerNames.ResultsExchange, "twice-1");

        await _fleet.Producer.SubmitTaskAsync(StartLog.Make("twice-1", SessionLane.Query, 1000));
        await TestVhost.EventuallyAsync(() => Task.FromResult(log.StartOf("twice-1") is not null), "the first copy running");
        await FleetHasHeardAsync("twice-1", TaskLedger.Known.Running);
        await _fleet.Producer.SubmitTaskAsync(StartLog.Make("twice-1", SessionLane.Query, 1000)); // while the first runs
        await TestVhost.EventuallyAsync(() => Task.FromResult(log.Finished.Contains("twice-1")), "the first copy finished");
        await FleetHasHeardAsync("twice-1", TaskLedger.Known.Completed);
        await _fleet.Producer.SubmitTaskAsync(StartLog.Make("twice-1", SessionLane.Query, 1000)); // after it completed

        await TestVhost.EventuallyAsync(async () =>
        {
            while (await channel.BasicGetAsync(replies, autoAck: true) is { } reply)
                results.Enqueue(TaskJson.Deserialize<ExternalTaskResult>(reply.Body.Span));
            return results.Count >= 3;
        }, "three results for twice-1");
        Assert.Single(log.Starts, s => s.Id == "twice-1");
        Assert.Equal(1, results.Count(r => r.Status == TaskStatuses.Completed));
        Assert.Equal(2, results.Count(r => r.Status == TaskStatuses.Duplicate));
    }

    /// <summary>
    /// Waits (up to 10 s, not asserted) until every consumer's ledger knows the id in that state. The guarantee is about copies
    /// that arrive after the fleet heard of the run (two copies within the same few milliseconds can both run); without this
    /// wait the test raced the event against the copy. With fleet de-duplication off the ledgers never hear, and the asserts fail.
    /// </summary>
    async Task FleetHasHeardAsync(string taskId, TaskLedger.Known state)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (DateTime.UtcNow < deadline && !_fleet.Hosts.All(h => h.Services.GetRequiredService<TaskLedger>().Lookup(taskId)?.State == state))
            await Task.Delay(20);
    }

    [Theory]
    [InlineData(null)] // the default, 4
    [InlineData(2)]
    public async Task A_lane_endpoint_holds_PrefetchPerLimit_times_the_lanes_limit(int? perLimit)
    {
        var log = new StartLog();
        var host = await StartConsumerAsync(o =>
        {
            o.SlotBudget = 1;
            o.Queue = o.Queue with { QueryMaxConcurrency = 1 };
            if (perLimit is { } p)
                o.PrefetchPerLimit = p;
        }, h => h.AddHandler(StartLog.CommandType, log.HandleAsync));
        var held = ConsumerRegistration.LanePrefetch(1, perLimit ?? new LaneQueueOptions().PrefetchPerLimit); // 4 and 3
        const int submitted = 7;
        foreach (var i in Enumerable.Range(1, submitted))
            await _fleet.Producer.SubmitTaskAsync(StartLog.Make($"held-{i}", SessionLane.Query, 4000));
        var slots = host.Services.GetRequiredService<LaneSlots>();
        // One runs (limit 1), the rest of the endpoint's window waits here for the slot, the others stay at the broker.
        await TestVhost.EventuallyAsync(() => Task.FromResult(log.Starts.Count == 1 && slots.WaitingIn(SessionLane.Query) == held - 1),
            $"one running and {held - 1} waiting in the consumer");
        await TestVhost.EventuallyAsync(async () => await _fleet.Vhost.ReadyAsync(BrokerNames.LaneQueue(SessionLane.Query)) == (uint)(submitted - held),
            $"{submitted - held} left at the broker");
        await Task.Delay(300); // no more arrive
        Assert.Equal(held - 1, slots.WaitingIn(SessionLane.Query));
        Assert.Equal((uint)(submitted - held), await _fleet.Vhost.ReadyAsync(BrokerNames.LaneQueue(SessionLane.Query)));
        await host.StopQuietlyAsync();
        _fleet.Hosts.Remove(host);
    }

    [Fact]
    public async Task Drain_finishes_running_work_and_returns_unstarted_work_to_the_queue()
    {
        var log = new StartLog();
        var first = await StartConsumerAsync(o => o.SlotBudget = 1, h => h.AddHandler(StartLog.CommandType, log.HandleAsync));
        // query prefetches 16 (4 x its limit of 4), but the budget lets one run: three wait inside the consumer, unacked.
        foreach (var i in Enumerable.Range(1, 4))
            await _fleet.Producer.SubmitTaskAsync(StartLog.Make($"drain-{i}", SessionLane.Query, 4000)); // long enough to still run when the stop comes
        await TestVhost.EventuallyAsync(() => Task.FromResult(log.Starts.Count == 1), "one task running");
        await TestVhost.EventuallyAsync(async () => await _fleet.Vhost.ReadyAsync(BrokerNames.LaneQueue(SessionLane.Query)) == 0, "all four delivered");

        await first.StopQuietlyAsync();
        _fleet.Hosts.Remove(first);
        Assert.Single(log.Starts);
        Assert.Single(log.Finished);
        Assert.Equal(3u, await _fleet.Vhost.ReadyAsync(BrokerNames.LaneQueue(SessionLane.Query)));
        Assert.Equal(0u, await _fleet.Vhost.ReadyAsync(DeadLetters.QueueOf(SessionLane.Query)));

        await StartConsumerAsync(handlers: h => h.AddHandler(StartLog.CommandType, log.HandleAsync), name: "second");
        await TestVhost.EventuallyAsync(() => Task.FromResult(log.Finished.Count == 4), "the returned tasks ran");
        Assert.Equal(4, log.Starts.Select(s => s.Id).Distinct().Count());
    }
}
