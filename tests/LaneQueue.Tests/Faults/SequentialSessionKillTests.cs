using LaneQueue.Contracts;
using LaneQueue.Producer;
using LaneQueue.Tests.Broker;
using Xunit.Abstractions;

namespace LaneQueue.Tests.Faults;

/// <summary>
/// Sequential sessions (<c>SessionLimits:Generate=1</c> with session shards) across a kill -9 of the consumer process that
/// serves the shards (it subscribed first, so the broker made it their single active consumer): the broker hands the shards
/// to the other process with the killed one's unacked tasks first, in order. Nothing is lost, no two tasks of a session run
/// at once, and each session's tasks start in submit order (a task interrupted by the kill starts again before the next).
/// </summary>
[Collection(FaultCollection.Name)]
public sealed class SequentialSessionKillTests(FaultBrokerFixture broker, ITestOutputHelper output) : FaultTest(broker, "lq-seq-kill")
{
    const int Shards = 4;
    const int TasksPerSession = 40;
    const int TaskMs = 50;
    static readonly string[] Sessions = ["conversation-1", "conversation-2", "conversation-3"];

    static readonly string[] Settings =
    [
        $"--LaneQueue:SessionShards:Generate={Shards}",
        "--LaneQueue:SessionLimits:Generate=1",
        "--LaneQueue:Queue:GenerateMaxConcurrency=4",
    ];

    [Fact]
    public async Task A_killed_shard_consumer_hands_its_sessions_over_in_order_without_overlap_or_loss()
    {
        var url = Node.Url(Vhost);
        var victim = await ConsumerProcess.StartAsync(url, "victim", Settings);
        Consumers.Add(victim);
        var survivor = await ConsumerProcess.StartAsync(url, "survivor", Settings);
        Consumers.Add(survivor);
        await using var tally = await ResultTally.StartAsync(url);
        var options = new ProducerOptions { RabbitMqUrl = url };
        options.SessionShards[SessionLane.Generate] = Shards;
        options.SessionLimits[SessionLane.Generate] = 1;
        await using var producer = await LaneQueueProducer.ConnectAsync(options);

        for (var i = 1; i <= TasksPerSession; i++)
        {
            foreach (var session in Sessions)
            {
                var task = ExternalTask.Create($"{session}-{i}", SessionLane.Generate, new { ms = TaskMs }, "sleep") with { SessionId = session };
                await producer.SubmitTaskAsync(task);
                tally.Accepted(task.Id);
            }
        }
        await ConsumerKillTests.WaitUntilAsync(() => tally.CompletedCount >= Sessions.Length * TasksPerSession * 3 / 10, TimeSpan.FromSeconds(120),
            "30 % of the tasks completed");
        var servedByVictim = tally.StartedBy("victim").Count();
        var killedAt = DateTimeOffset.UtcNow;
        victim.KillHard();

        var counts = await tally.WaitForAllAsync(TimeSpan.FromSeconds(180), output.WriteLine);
        var overlaps = new List<string>();
        var outOfOrder = new List<string>();
        foreach (var session in Sessions)
        {
            // Every start of the session's tasks in time order, with when that run's handler ended: the result it produced
            // (same start time), else (a run on the victim whose result died with it, or that the kill interrupted) no
            // earlier than its sleep and no later than the kill.
            var runs = Enumerable.Range(1, TasksPerSession).SelectMany(i =>
            {
                var id = $"{session}-{i}";
                return tally.StartTimesOf(id).Zip(tally.StartsOf(id), (at, consumer) => (Id: id, Index: i, At: at, Consumer: consumer,
                    End: tally.ResultsOf(id).Where(r => Math.Abs((r.StartedAt - at).TotalMilliseconds) < 1).Select(r => (DateTimeOffset?)r.FinishedAt).FirstOrDefault()
                         ?? Min(at + TimeSpan.FromMilliseconds(TaskMs), killedAt)));
            }).OrderBy(r => r.At).ToList();
            for (var k = 1; k < runs.Count; k++)
            {
                if (runs[k].Index < runs[k - 1].Index)
                    outOfOrder.Add($"{runs[k].Id} on {runs[k].Consumer} at {runs[k].At:HH:mm:ss.fff} after {runs[k - 1].Id} on {runs[k - 1].Consumer} at {runs[k - 1].At:HH:mm:ss.fff}");
                if (runs[k].Id != runs[k - 1].Id && runs[k].At < runs[k - 1].End)
                    overlaps.Add($"{runs[k].Id} on {runs[k].Consumer} started while {runs[k - 1].Id} ran on {runs[k - 1].Consumer}");
            }
        }
        var report = $"{counts}; started on the victim before the kill: {servedByVictim} (killed at {killedAt:HH:mm:ss.fff}); {overlaps.Count} overlaps, {outOfOrder.Count} out of order";
        output.WriteLine(report);
        Evidence.Write("fault-session-sequential-kill", new
        {
            Fault = "kill -9 of the consumer process serving the session shards (SessionLimits:Generate=1) at 30 % of the tasks",
            Sessions = Sessions.Length,
            TasksPerSession,
            TaskMs,
            StartedOnTheVictim = servedByVictim,
            Overlaps = overlaps.Count,
            OutOfOrder = outOfOrder.Count,
            counts.Accepted,
            counts.Completed,
            counts.Lost,
        }, report);

        Assert.True(servedByVictim > 0, $"the victim served no shard: {report}");
        Assert.True(counts.Lost == 0, $"lost tasks: {string.Join(", ", tally.Missing().Take(20))}; {report}\n--- survivor ---\n{ConsumerKillTests.Tail(survivor.Output)}");
        Assert.Equal(Sessions.Length * TasksPerSession, counts.Completed);
        Assert.True(overlaps.Count == 0, $"{report}: {string.Join("; ", overlaps.Take(5))}");
        Assert.True(outOfOrder.Count == 0, $"{report}: {string.Join("; ", outOfOrder.Take(5))}");
    }

    static DateTimeOffset Min(DateTimeOffset a, DateTimeOffset b) => a < b ? a : b;
}
