using LaneQueue.Contracts;
using LaneQueue.Producer;
using LaneQueue.Tests.Broker;
using Xunit.Abstractions;

namespace LaneQueue.Tests.Faults;

/// <summary>kill -9 of a consumer process with tasks running and prefetched: the broker redelivers them all to the other consumer.</summary>
[Collection(FaultCollection.Name)]
public sealed class ConsumerKillTests(FaultBrokerFixture broker, ITestOutputHelper output) : FaultTest(broker, "lq-kill")
{
    [Fact]
    public async Task Killing_a_consumer_process_loses_no_task()
    {
        var url = Node.Url(Vhost);
        var victim = await ConsumerProcess.StartAsync(url, "victim");
        Consumers.Add(victim);
        var survivor = await ConsumerProcess.StartAsync(url, "survivor");
        Consumers.Add(survivor);
        await using var tally = await ResultTally.StartAsync(url);
        await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = url });

        // 8 tasks per lane, 2 s each (about 8 s of work for the fleet, so the victim is still busy after the rabbitmqctl read below): with slot budget 4 per consumer, each consumer runs 4 and holds more prefetched.
        var tasks = SessionLanes.All.SelectMany(lane => Enumerable.Range(1, 8)
            .Select(i => ExternalTask.Create($"kill-{lane.WireName()}-{i}", lane, new { ms = 2000 }, "sleep"))).ToList();
        foreach (var task in tasks)
        {
            await producer.SubmitTaskAsync(task);
            tally.Accepted(task.Id);
        }

        await WaitUntilAsync(() => tally.StartedBy("victim").Count() >= 4, TimeSpan.FromSeconds(60), "the victim has 4 tasks running");
        var unacked = await UnackedAsync();
        victim.KillHard();
        output.WriteLine($"killed the victim (pid {victim.Pid}); unacked in the broker just before: {unacked} (running + prefetched, both consumers)");

        var counts = await tally.WaitForAllAsync(TimeSpan.FromSeconds(120), output.WriteLine);
        // Read once every task has ended, not at the kill: a result the victim published just before it died reaches the
        // tally a moment later, so a snapshot taken at the kill would count that task as interrupted.
        var interrupted = tally.StartedBy("victim").Distinct()
            .Where(id => !tally.ResultsOf(id).Any(r => r.Consumer == "victim")).ToList();
        var redelivered = interrupted.Count(id => tally.ResultsOf(id).Any(r => r.Status == TaskStatuses.Completed && r.Consumer == "survivor"));
        var report = $"{counts}; running on the victim when killed={interrupted.Count}, of which completed on the survivor={redelivered}";
        output.WriteLine(report);
        Evidence.Write("fault-consumer-kill", new
        {
            Fault = "kill -9 of one of two consumer processes with tasks running and prefetched",
            Tasks = tasks.Count,
            RunningOnTheVictimWhenKilled = interrupted.Count,
            UnackedInTheBrokerJustBefore = unacked,
            CompletedOnTheSurvivor = redelivered,
            counts.Accepted,
            counts.Completed,
            RanTwice = counts.Duplicated,
            counts.Lost,
        }, report);

        Assert.True(counts.Lost == 0, $"lost tasks: {string.Join(", ", tally.Missing().Take(20))}; {report}\n--- survivor ---\n{Tail(survivor.Output)}");
        Assert.True(interrupted.Count >= 1, $"the victim was running nothing when killed; {report}");
        Assert.Equal(interrupted.Count, redelivered);
        Assert.Equal(tasks.Count, counts.Completed);
    }

    [Fact]
    public async Task Kill_drill_a_consumer_killed_at_30_percent_runs_no_completed_task_twice()
    {
        // The crash window of at-least-once: a consumer killed after publishing a result and before its ack. The survivor gets
        // the redelivery and finds the result in the task history instead of running the task again.
        var url = Node.Url(Vhost);
        var victim = await ConsumerProcess.StartAsync(url, "victim");
        Consumers.Add(victim);
        var survivor = await ConsumerProcess.StartAsync(url, "survivor");
        Consumers.Add(survivor);
        await using var tally = await ResultTally.StartAsync(url);
        await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = url });
        var lanes = new[] { SessionLane.Query, SessionLane.Execute };
        var tasks = Enumerable.Range(1, DrillTasks)
            .Select(i => ExternalTask.Create($"drill-{i}", lanes[i % 2], new { ms = 30 }, "sleep")).ToList();
        // All of them waiting before either consumer takes one, so both are busy when the kill comes.
        foreach (var lane in lanes)
            await producer.PauseLaneAsync(lane);
        await WaitUntilAsync(() => victim.Output.Contains("Fleet command pause execute", StringComparison.Ordinal) && survivor.Output.Contains("Fleet command pause execute", StringComparison.Ordinal),
            TimeSpan.FromSeconds(30), "both consumers paused the lanes");
        foreach (var task in tasks)
        {
            await producer.SubmitTaskAsync(task);
            tally.Accepted(task.Id);
        }
        foreach (var lane in lanes)
            await producer.ResumeLaneAsync(lane);
        await WaitUntilAsync(() => tally.CompletedCount >= DrillTasks * 3 / 10, TimeSpan.FromSeconds(120), "30 % of the tasks completed");
        var completedAtKill = tally.CompletedCount;
        victim.KillHard();

        var counts = await tally.WaitForAllAsync(TimeSpan.FromSeconds(120), output.WriteLine);
        var report = $"killed at {completedAtKill} of {DrillTasks} completed; {counts}";
        output.WriteLine(report);
        Evidence.Write("fault-kill-drill", new
        {
            Fault = $"kill -9 of one of two consumer processes at 30 % of {DrillTasks} short tasks (30 ms)",
            Tasks = DrillTasks,
            CompletedWhenKilled = completedAtKill,
            counts.Accepted,
            counts.Completed,
            DuplicateCompletedResults = counts.Duplicated,
            StartedMoreThanOnce = counts.StartedTwice,
            AnsweredDuplicate = counts.DuplicateSkips,
            counts.Lost,
        }, report);

        Assert.True(counts.Lost == 0, $"lost tasks: {string.Join(", ", tally.Missing().Take(20))}; {report}\n--- survivor ---\n{Tail(survivor.Output)}");
        Assert.True(counts.Duplicated == 0, $"a task completed twice; {report}\n--- survivor ---\n{Tail(survivor.Output)}");
    }

    const int DrillTasks = 600;

    async Task<long> UnackedAsync()
    {
        // rabbitmqctl reads the queues themselves (the management API's numbers lag by its statistics interval).
        var run = await Node.CtlAsync("list_queues", "-p", Vhost, "--no-table-headers", "messages_unacknowledged");
        return run.Output.Split('\n').Sum(line => long.TryParse(line.Trim(), out var n) ? n : 0);
    }

    internal static async Task WaitUntilAsync(Func<bool> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
                Assert.Fail($"timed out after {timeout.TotalSeconds:0} s waiting for: {what}");
            await Task.Delay(50);
        }
    }

    internal static string Tail(string text, int lines = 40) => string.Join('\n', text.Split('\n').TakeLast(lines));
}
