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
        // completed or dead-lettered with it. Every return counts towards the limit (RabbitMQ 3.10): without the crash suspects
        // kept apart, a task held by the crashing processes in every crash (a restarted consumer takes the heads of all lanes
        // at once) is dead-lettered with the poison task (kept in its lane's dead-letter queue, not lost); the test counts them.
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
        // Every broker dead letter gets its failed result from the fleet (BrokerDeadLetterAnswers), soon after the move.
        var letterIds = dead.Select(d => d.TaskId!).ToHashSet();
        var answerDeadline = DateTime.UtcNow.AddSeconds(60);
        while (letterIds.Any(id => !tally.ResultsOf(id).Any(r => r.Status is TaskStatuses.Failed or TaskStatuses.Completed)) && DateTime.UtcNow < answerDeadline)
            await Task.Delay(200);
        await Task.Delay(1000); // room for a second answer, which must not come
        var counts = tally.Count();
        await stopSupervisor.CancelAsync();
        await supervisor;
        var report = $"{counts}; crashes (consumer restarts)={crashes}; delivery limit={limit}; dead letters: {dead.Count} " +
                     $"(the poison task + {collateralIds.Count} neighbour(s) held in every crash: " +
                     $"{string.Join(", ", dead.Where(d => d.TaskId != "poison-1").Select(d => $"{d.TaskId} ({d.Lane?.WireName()})"))})";
        output.WriteLine(report);
        Evidence.Write("fault-poison-crash", new
        {
            Fault = "a task that kills its consumer process (Environment.FailFast); quorum queues, DeliveryLimit 3, a supervisor restarting consumers; crash suspects kept apart (IsolateCrashSuspects, the default)",
            NormalTasks = normal,
            DeliveryLimit = limit,
            Crashes = crashes,
            PoisonDeadLettered = dead.Any(d => d.TaskId == "poison-1"),
            NeighboursDeadLettered = collateralIds.Count,
            DeadLettersAnsweredFailed = letterIds.Count(id => tally.ResultsOf(id).Count(r => r.Status == TaskStatuses.Failed) == 1),
            DeadLettersOfCompletedTasks = letterIds.Count(id => tally.ResultsOf(id).Any(r => r.Status == TaskStatuses.Completed)),
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
        // It never ran to an end, but its sender gets an answer: one failed result saying why, as does each neighbour the
        // broker dead-lettered with it; a task that completed gets no second, failed result.
        var poisonResult = Assert.Single(tally.ResultsOf("poison-1"));
        Assert.Equal(TaskStatuses.Failed, poisonResult.Status);
        Assert.Equal(CrashSuspects.DeliveryLimitError(limit + 1), poisonResult.Error);
        // Crash suspects are kept apart (LaneQueue:IsolateCrashSuspects, on by default): the neighbours held in the poison
        // task's first crash run later, so none reaches the limit with it (with it off: 2 of 80 in a try).
        Assert.True(collateralIds.Count == 0, $"neighbours dead-lettered with the poison task: {report}");
        // A neighbour that had completed before a crash took its ack keeps its completed result as its answer: no failed one.
        foreach (var id in collateralIds)
        {
            var results = tally.ResultsOf(id);
            var shown = string.Join("; ", results.Select(r => $"{r.Status} {r.Error}"));
            var failed = results.Where(r => r.Status == TaskStatuses.Failed).ToList();
            if (results.Any(r => r.Status == TaskStatuses.Completed))
                Assert.True(failed.Count == 0, $"{id} completed, then its copy was dead-lettered: no failed answer expected, got: {shown}");
            else
                Assert.True(failed.Count == 1 && failed[0].Error!.StartsWith("delivery_limit: ", StringComparison.Ordinal), $"{id}: expected one failed answer, got: {shown}");
        }
        // (A completed task may also get a "duplicate" result: a redelivered copy of it after a crash, wire contract §6.4.)
        Assert.All(tally.AcceptedIds.Where(id => !letterIds.Contains(id)), id =>
            Assert.DoesNotContain(tally.ResultsOf(id), r => r.Status == TaskStatuses.Failed));
    }

    [Fact]
    public async Task Broker_dead_letters_are_answered_once_each_across_a_kill_of_the_answering_consumer()
    {
        const int limit = 3;
        var url = broker.Node.Url(_vhost);
        string[] settings = ["--LaneQueue:QuorumQueues=true", $"--LaneQueue:DeliveryLimit={limit}"];
        await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = url, QuorumQueues = true, DeliveryLimit = limit });
        // generate is paused on every consumer, so its tasks wait in the queue; each is sent with a 1 ms TTL, so the broker
        // dead-letters it (reason expired) right away: a stream of broker dead letters while the fleet runs.
        await producer.PauseLaneAsync(SessionLane.Generate);
        foreach (var name in new[] { "consumer-a", "consumer-b" })
            _processes[name] = await ConsumerProcess.StartAsync(url, name, settings);
        await using var tally = await ResultTally.StartAsync(url);
        await using var connection = await BrokerConnection.ConnectAsync(url, "expiring-publisher");
        await using var channel = await connection.CreateChannelAsync(new RabbitMQ.Client.CreateChannelOptions(true, true));
        async Task PublishExpiringAsync(int from, int count)
        {
            for (var i = from; i < from + count; i++)
            {
                var task = ExternalTask.Create($"expiring-{i}", SessionLane.Generate, new { i }, "echo");
                tally.Accepted(task.Id);
                var properties = LaneQueue.Producer.TaskMessage.Properties(task, null);
                properties.Expiration = "1";
                await channel.BasicPublishAsync(BrokerNames.TasksExchange, BrokerNames.RoutingKey(task.Lane), mandatory: true, properties, TaskJson.Serialize(task));
            }
        }

        // The first half; kill -9 the consumer that answers as soon as its first answer arrives, while it answers the rest.
        await PublishExpiringAsync(0, 50);
        var deadline = DateTime.UtcNow.AddSeconds(60);
        string? answering = null;
        while (answering is null && DateTime.UtcNow < deadline)
        {
            answering = tally.AcceptedIds.SelectMany(tally.ResultsOf).Select(r => r.Consumer).FirstOrDefault();
            if (answering is null)
                await Task.Delay(5);
        }
        Assert.True(answering is not null, "no broker dead letter was answered within 60 s");
        var killed = _processes.Values.Single(p => p.Name == answering);
        killed.KillHard();
        var answeredBeforeKill = tally.AcceptedIds.Count(id => tally.ResultsOf(id).Count > 0);
        // The second half can only be answered by the consumer that is left.
        await PublishExpiringAsync(50, 50);
        while (tally.AcceptedIds.Any(id => tally.ResultsOf(id).Count == 0) && DateTime.UtcNow < deadline.AddSeconds(60))
            await Task.Delay(100);
        await Task.Delay(2000); // room for a second answer, which must not come

        var answers = tally.AcceptedIds.ToDictionary(id => id, tally.ResultsOf);
        var byConsumer = answers.Values.SelectMany(r => r).GroupBy(r => r.Consumer ?? "?").ToDictionary(g => g.Key, g => g.Count());
        var report = $"killed {answering} after {answeredBeforeKill} answer(s); answers by consumer: {string.Join(", ", byConsumer.Select(kv => $"{kv.Key}={kv.Value}"))}; " +
                     $"without answer: {answers.Count(kv => kv.Value.Count == 0)}; answered twice or more: {answers.Count(kv => kv.Value.Count > 1)}";
        output.WriteLine(report);
        Evidence.Write("fault-broker-dead-letter-answers", new
        {
            Fault = "100 tasks dead-lettered by the broker (1 ms TTL on a paused lane, quorum queues); kill -9 of the answering consumer after its first answer",
            Letters = answers.Count,
            AnsweredBeforeKill = answeredBeforeKill,
            AnswersByConsumer = byConsumer,
            Unanswered = answers.Count(kv => kv.Value.Count == 0),
            AnsweredMoreThanOnce = answers.Count(kv => kv.Value.Count > 1),
        }, report);
        Assert.All(answers, kv =>
        {
            var answer = Assert.Single(kv.Value);
            Assert.Equal(TaskStatuses.Failed, answer.Status);
            Assert.StartsWith("expired: its time to live ran out in lanequeue.generate", answer.Error, StringComparison.Ordinal);
        });
        var survivor = _processes.Values.Single(p => p.Name != answering).Name;
        Assert.All(Enumerable.Range(50, 50), i => Assert.Equal(survivor, answers[$"expiring-{i}"][0].Consumer));
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
