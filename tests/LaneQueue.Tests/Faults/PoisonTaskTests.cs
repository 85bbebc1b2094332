using System.Collections.Concurrent;
using LaneQueue.Consumer;
using LaneQueue.Contracts;
using LaneQueue.Producer;
using LaneQueue.Tests.Broker;
using Microsoft.Extensions.Hosting;
using Xunit.Abstractions;

namespace LaneQueue.Tests.Faults;

/// <summary>Tasks that crash their consumer, hang past their timeout, or throw every time: dead-lettered, and the fleet serves on.</summary>
[Collection(FaultCollection.Name)]
public sealed class PoisonTaskTests(FaultBrokerFixture broker, ITestOutputHelper output) : IAsyncLifetime
{
    string _vhost = "";
    readonly ConcurrentDictionary<string, ConsumerProcess> _processes = new();
    readonly List<IHost> _hosts = [];

    public async Task InitializeAsync() => _vhost = await broker.Node.CreateVhostAsync("lq-poison");

    public async Task DisposeAsync()
    {
        foreach (var consumer in _processes.Values)
            await consumer.DisposeAsync();
        foreach (var host in _hosts)
            await host.StopQuietlyAsync();
        await broker.Node.DeleteVhostAsync(_vhost);
    }

    [Fact]
    public async Task A_task_that_crashes_every_consumer_is_dead_lettered_at_the_delivery_limit_and_the_fleet_serves_on()
    {
        const int limit = 3;
        var url = broker.Node.Url(_vhost);
        string[] settings = ["--LaneQueue:QuorumQueues=true", $"--LaneQueue:DeliveryLimit={limit}"];
        var crashes = 0;
        foreach (var name in new[] { "consumer-a", "consumer-b" })
            _processes[name] = await ConsumerProcess.StartAsync(url, name, settings);

        // A supervisor (what systemd or Kubernetes does): restart a consumer that died, a bounded number of times.
        using var stopSupervisor = new CancellationTokenSource();
        var supervisor = Task.Run(async () =>
        {
            while (!stopSupervisor.IsCancellationRequested && crashes < 12)
            {
                foreach (var (name, process) in _processes)
                {
                    if (!process.HasExited)
                        continue;
                    Interlocked.Increment(ref crashes);
                    output.WriteLine($"{DateTime.UtcNow:HH:mm:ss.f} {name} died (exit {process.ExitCode}); restarting it");
                    await process.DisposeAsync();
                    try
                    {
                        _processes[name] = await ConsumerProcess.StartAsync(url, name, settings);
                    }
                    catch (InvalidOperationException)
                    {
                        // it died again while starting (it took the crash task at once): seen on the next round
                    }
                }
                await Task.Delay(200);
            }
        });

        await using var tally = await ResultTally.StartAsync(url);
        await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = url, QuorumQueues = true, DeliveryLimit = limit });
        var normal = 0;
        async Task SubmitNormalAsync(int count)
        {
            for (var i = 0; i < count; i++, normal++)
            {
                var lane = SessionLanes.All[normal % SessionLanes.All.Count];
                var task = ExternalTask.Create($"normal-{normal}", lane, new { ms = 20 }, "sleep");
                await producer.SubmitTaskAsync(task);
                tally.Accepted(task.Id);
            }
        }
        await SubmitNormalAsync(20);
        await producer.SubmitTaskAsync(ExternalTask.Create("poison-1", SessionLane.Execute, null, "crash"));
        await SubmitNormalAsync(60);

        var errorQueue = DeadLetters.QueueOf(SessionLane.Execute);
        async Task<List<DeadLetter>> AllDeadLettersAsync()
        {
            var all = new List<DeadLetter>();
            foreach (var lane in SessionLanes.All)
            {
                try
                {
                    all.AddRange(await producer.DeadLetters.ListAsync(DeadLetters.QueueOf(lane)));
                }
                catch (RabbitMQ.Client.Exceptions.OperationInterruptedException)
                {
                    // the error queue is declared by the consumers
                }
            }
            return all;
        }

        // Wait (bounded) until every task is accounted for: the poison task dead-lettered, and each normal task either
        // completed or dead-lettered with it. Every return counts towards the limit (RabbitMQ 3.10), so a task that was running
        // or prefetched by the crashing processes in every crash (a restarted consumer takes the heads of all lanes at once)
        // is dead-lettered with the poison task: collateral, kept in its lane's dead-letter queue (not lost), to be redriven.
        List<DeadLetter> dead = [];
        var deadline = DateTime.UtcNow.AddSeconds(180);
        while (true)
        {
            dead = await AllDeadLettersAsync();
            var deadIds = dead.Select(d => d.TaskId).ToHashSet();
            if (deadIds.Contains("poison-1") && tally.Missing().All(deadIds.Contains))
                break;
            if (DateTime.UtcNow > deadline)
            {
                output.WriteLine($"not every task accounted for after 180 s: {tally.Count()}; dead letters: {string.Join(", ", deadIds)}");
                break;
            }
            await Task.Delay(500);
        }
        var collateralIds = dead.Where(d => d.TaskId != "poison-1").Select(d => d.TaskId!).ToHashSet();
        var counts = tally.Count();
        await stopSupervisor.CancelAsync();
        await supervisor;
        var report = $"{counts}; crashes (consumer restarts)={crashes}; delivery limit={limit}; dead letters: {dead.Count} " +
                     $"(the poison task + {collateralIds.Count} neighbour(s) held in every crash: " +
                     $"{string.Join(", ", dead.Where(d => d.TaskId != "poison-1").Select(d => $"{d.TaskId} ({d.Lane?.WireName()})"))})";
        output.WriteLine(report);
        Evidence.Write("fault-poison-crash", new
        {
            Fault = "a task that kills its consumer process (Environment.FailFast); quorum queues, DeliveryLimit 3, a supervisor restarting consumers",
            NormalTasks = normal,
            DeliveryLimit = limit,
            Crashes = crashes,
            PoisonDeadLettered = dead.Any(d => d.TaskId == "poison-1"),
            NeighboursDeadLettered = collateralIds.Count,
            counts.Accepted,
            counts.Completed,
            LostNeitherCompletedNorDeadLettered = tally.Missing().Count(id => !collateralIds.Contains(id)),
        }, report);

        var letter = Assert.Single(dead, d => d.TaskId == "poison-1");
        output.WriteLine($"dead letter reason: {letter.Reason}");
        Assert.Contains("delivery_limit", letter.Reason, StringComparison.Ordinal);
        Assert.All(dead.Where(d => d.TaskId != "poison-1"), d => Assert.Contains("delivery_limit", d.Reason, StringComparison.Ordinal));
        // Nothing vanishes: every normal task either completed or waits in the dead-letter queue; the other lanes all completed.
        var vanished = tally.Missing().Where(id => !collateralIds.Contains(id)).ToList();
        Assert.True(vanished.Count == 0, $"normal tasks lost:\n{tally.DescribeMissing()}\n{report}\n{await broker.Node.QueuesAsync(_vhost)}");
        Assert.InRange(crashes, 1, limit + 2);
        Assert.Empty(tally.ResultsOf("poison-1")); // it never ran to an end: no result, just the dead letter
    }

    [Fact]
    public async Task Hanging_and_always_failing_tasks_are_dead_lettered_while_every_lane_keeps_serving()
    {
        var url = broker.Node.Url(_vhost);
        var hangs = 0;
        for (var i = 0; i < 2; i++)
        {
            _hosts.Add(await ConsumerHost.StartAsync(url, o => o.Queue = o.Queue with
            {
                RetryPolicy = new RetryPolicy { Strategy = RetryStrategy.Fixed, MaxRetries = 1, FixedDelayMs = 100 },
            }, h =>
            {
                // Ignores its cancellation token: only the consumer's own deadline can end its run.
                h.AddHandler("hang", async _ =>
                {
                    Interlocked.Increment(ref hangs);
                    await Task.Delay(TimeSpan.FromMinutes(5));
                    return null;
                });
                h.AddHandler("throw", _ => throw new InvalidOperationException("this handler always throws"));
            }, name: $"in-process-{i}"));
        }
        await using var tally = await ResultTally.StartAsync(url);
        await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = url });

        var hang = producer.SubmitAndWaitAsync(ExternalTask.Create("hang-1", SessionLane.Execute, null, "hang") with { TimeoutMs = 500 }, TimeSpan.FromSeconds(60));
        var fail = producer.SubmitAndWaitAsync(ExternalTask.Create("throw-1", SessionLane.Query, null, "throw"), TimeSpan.FromSeconds(60));
        for (var i = 0; i < 80; i++)
        {
            var task = ExternalTask.Create($"fine-{i}", SessionLanes.All[i % 4], new { ms = 30 }, "sleep");
            await producer.SubmitTaskAsync(task);
            tally.Accepted(task.Id);
        }
        var counts = await tally.WaitForAllAsync(TimeSpan.FromSeconds(60), output.WriteLine);
        var hung = await hang;
        var failed = await fail;
        var report = $"{counts}; hang: {hung.Status} after {hung.Attempts} attempts ({hangs} handler runs); throw: {failed.Status} after {failed.Attempts} attempts";
        output.WriteLine(report);
        Evidence.Write("fault-hanging-and-failing-handlers", new
        {
            Fault = "a handler that ignores its cancellation token past timeout_ms (500 ms) and one that always throws; 1 retry; 80 normal tasks over all lanes",
            HangStatus = hung.Status,
            HangAttempts = hung.Attempts,
            HangHandlerRuns = hangs,
            ThrowStatus = failed.Status,
            ThrowAttempts = failed.Attempts,
            counts.Accepted,
            counts.Completed,
            counts.Lost,
        }, report);

        Assert.True(counts.Lost == 0, $"lost:\n{tally.DescribeMissing()}\n{report}");
        Assert.Equal(TaskStatuses.TimedOut, hung.Status);
        Assert.Equal(2, hung.Attempts);
        Assert.Equal(TaskStatuses.Failed, failed.Status);
        Assert.Equal(2, failed.Attempts);
        await TestVhost.EventuallyAsync(async () =>
            (await producer.DeadLetters.ListAsync(DeadLetters.QueueOf(SessionLane.Execute))).Any(d => d.TaskId == "hang-1")
            && (await producer.DeadLetters.ListAsync(DeadLetters.QueueOf(SessionLane.Query))).Any(d => d.TaskId == "throw-1"), "both dead letters", 30);
    }
}
