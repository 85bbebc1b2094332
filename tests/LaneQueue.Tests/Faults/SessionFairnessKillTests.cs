using LaneQueue.Contracts;
using LaneQueue.Producer;
using LaneQueue.Tests.Broker;
using Xunit.Abstractions;

namespace LaneQueue.Tests.Faults;

/// <summary>
/// Fair turns between sessions hold across a kill -9: two consumer processes with session shards on generate run session
/// A's backlog when session B submits; one process is killed right after B's submit is confirmed, while both hold tasks of
/// both sessions. Every task completes (lost 0) and B's tasks still start within the bound of the fairness test, the
/// victim's share of them redelivered to the survivor ahead of A's backlog (B's shard, not behind A's).
/// </summary>
[Collection(FaultCollection.Name)]
public sealed class SessionFairnessKillTests(FaultBrokerFixture broker, ITestOutputHelper output) : FaultTest(broker, "lq-fair-kill")
{
    const int Shards = 8;
    const int SlotsPerConsumer = 4;
    const int BacklogTasks = 600;
    const int LateTasks = 20;
    const int TaskMs = 20;

    static readonly string[] Settings =
    [
        $"--LaneQueue:SessionShards:Generate={Shards}",
        $"--LaneQueue:Queue:GenerateMaxConcurrency={SlotsPerConsumer}",
        $"--LaneQueue:SlotBudget={SlotsPerConsumer}",
    ];

    static IEnumerable<ExternalTask> Session(string session, int count) =>
        Enumerable.Range(1, count).Select(i => ExternalTask.Create($"{session}-{i}", SessionLane.Generate, new { ms = TaskMs }, "sleep") with { SessionId = session });

    [Fact]
    public async Task Sessions_keep_their_turns_and_lose_nothing_when_a_consumer_is_killed()
    {
        const string a = "session-a", b = "session-b2";
        Assert.NotEqual(SessionShards.Of(a, Shards), SessionShards.Of(b, Shards));
        var url = Node.Url(Vhost);
        var victim = await ConsumerProcess.StartAsync(url, "victim", Settings);
        Consumers.Add(victim);
        var survivor = await ConsumerProcess.StartAsync(url, "survivor", Settings);
        Consumers.Add(survivor);
        await using var tally = await ResultTally.StartAsync(url);
        var options = new ProducerOptions { RabbitMqUrl = url };
        options.SessionShards[SessionLane.Generate] = Shards;
        await using var producer = await LaneQueueProducer.ConnectAsync(options);

        foreach (var chunk in Session(a, BacklogTasks).Chunk(50))
        {
            await Task.WhenAll(chunk.Select(t => producer.SubmitTaskAsync(t)));
            foreach (var task in chunk)
                tally.Accepted(task.Id);
        }
        await ConsumerKillTests.WaitUntilAsync(() => tally.StartedBy("victim").Count() >= 8 && tally.StartedBy("survivor").Count() >= 8,
            TimeSpan.FromSeconds(60), "both consumers run A's tasks");
        var late = Session(b, LateTasks).ToList();
        await Task.WhenAll(late.Select(t => producer.SubmitTaskAsync(t)));
        foreach (var task in late)
            tally.Accepted(task.Id);
        var confirmed = DateTimeOffset.UtcNow;
        victim.KillHard();
        // The victim's unacked tasks go back to their queues when the broker sees its connection close, which on a loaded
        // machine can take longer than several of A's tasks run (they keep starting on the survivor meanwhile): measured here, as the
        // moment B's shard lost the victim's consumer, so the bound below counts only what the survivor could have ordered.
        var returned = await ConsumersGoneAsync(url, SessionShards.Queue(SessionLane.Generate, SessionShards.Of(b, Shards)), left: 1);

        var counts = await tally.WaitForAllAsync(TimeSpan.FromSeconds(180), output.WriteLine);
        // B's tasks by the start that ran them to the end (the last), and A's starts before each: after B's confirm, or for a
        // B task that started after the broker returned the victim's tasks, after that.
        var bStarts = late.Select(t => tally.StartTimesOf(t.Id).Max()).Order().ToList();
        var aStarts = Enumerable.Range(1, BacklogTasks).SelectMany(i => tally.StartTimesOf($"{a}-{i}")).ToList();
        var aBefore = bStarts.Select(at => aStarts.Count(x => x < at && x > (at > returned ? returned : confirmed))).ToList();
        var slots = 2 * SlotsPerConsumer;
        var report = $"{counts}; A tasks started before each B task (after B's confirm, or after the victim's tasks were returned " +
                     $"{(returned - confirmed).TotalMilliseconds:0} ms after it, for B tasks started later): [{string.Join(", ", aBefore)}] " +
                     $"(bound j + {3 * slots}); B's last start {(bStarts[^1] - confirmed).TotalMilliseconds:0} ms after its confirm";
        output.WriteLine(report);
        Evidence.Write("fault-session-fairness-kill", new
        {
            Fault = "kill -9 of one of two consumer processes right after session B's submit, session shards on generate",
            Shards,
            BacklogTasks,
            LateTasks,
            TaskMs,
            ABeforeEachB = aBefore,
            VictimTasksReturnedMs = Math.Round((returned - confirmed).TotalMilliseconds),
            BLastStartMs = Math.Round((bStarts[^1] - confirmed).TotalMilliseconds),
            counts.Accepted,
            counts.Completed,
            RanTwice = counts.Duplicated,
            counts.Lost,
        }, report);

        Assert.True(counts.Lost == 0, $"lost tasks: {string.Join(", ", tally.Missing().Take(20))}; {report}\n--- survivor ---\n{ConsumerKillTests.Tail(survivor.Output)}");
        Assert.Equal(BacklogTasks + LateTasks, counts.Completed);
        for (var j = 0; j < aBefore.Count; j++)
            Assert.True(aBefore[j] <= j + 1 + 3 * slots, $"B's task {j + 1} waited behind {aBefore[j]} of A's: {report}");
    }

    /// <summary>Polls a queue's consumer count over AMQP (no management-API lag) until at most <paramref name="left"/> remain; when that was seen.</summary>
    static async Task<DateTimeOffset> ConsumersGoneAsync(string url, string queue, uint left)
    {
        await using var connection = await BrokerConnection.ConnectAsync(url, "fault-test-consumers");
        await using var channel = await connection.CreateChannelAsync();
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while ((await channel.QueueDeclarePassiveAsync(queue)).ConsumerCount > left)
        {
            if (DateTime.UtcNow > deadline)
                Assert.Fail($"{queue} still had more than {left} consumer(s) 60 s after the kill");
            await Task.Delay(5);
        }
        return DateTimeOffset.UtcNow;
    }
}
