using LaneQueue.Contracts;
using LaneQueue.Producer;
using LaneQueue.Tests.Broker;
using Xunit.Abstractions;

namespace LaneQueue.Tests.Faults;

/// <summary>
/// kill -9 of every consumer while delayed tasks wait in the delay tree and while the consumers are parking raw ones in it:
/// 200 tasks from the .NET producer (delays 4-24 s) wait in the tree; 1,000 raw tasks to the lanes (delays 12-24 s) are being
/// published, and the three consumer processes are killed once they have parked 50 of them (at most 8 s in, before any raw
/// task is due: a fleet that parks nothing is killed too, and judged by what it lost). For 3 s after the raw publishing
/// ends no consumer runs (the rest of the raw tasks wait in the lanes, tasks that come due join them); then three new
/// consumers start. None is lost, none starts before it is due, counted from the results. Not exactly once: a raw task a
/// killed consumer had confirmed into the tree but not acked is in the tree twice (its lane copy is parked again, for the same
/// due time), and the two copies, due together, can run on two consumers before either hears of the other's run
/// (wire-contract.md §9, Limits). The test asserts that only such tasks run twice: none of the .NET producer's, none
/// published after the kill.
/// </summary>
[Collection(FaultCollection.Name)]
public sealed class DelayedConsumerKillTests(FaultBrokerFixture broker, ITestOutputHelper output) : FaultTest(broker, "lq-delay-kill")
{
    const int ProducerTasks = 200;
    const int RawTasks = 1_000;
    const int ParkedBeforeKill = 50;

    /// <summary>The consumer's log line for a task it parked in the delay tree (<c>Log.TaskDelayed</c>).</summary>
    const string ParkedLine = "in the delay tree";

    static int Parked(IEnumerable<ConsumerProcess> consumers) =>
        consumers.Sum(c => c.Output.Split('\n').Count(line => line.Contains(ParkedLine, StringComparison.Ordinal)));

    [Fact]
    public async Task Killing_every_consumer_while_delayed_tasks_wait_and_are_parked_loses_none_starts_none_early_and_runs_twice_only_what_a_killed_consumer_held()
    {
        var url = Node.Url(Vhost);
        var first = new List<ConsumerProcess>();
        foreach (var name in new[] { "first-a", "first-b", "first-c" })
            first.Add(await ConsumerProcess.StartAsync(url, name));
        Consumers.AddRange(first);
        await using var tally = await ResultTally.StartAsync(url);
        await using var raw = await RawClient.ConnectAsync(url);
        await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = url, ClientName = "delay-kill-producer" });
        var delayed = new DelayedTasks();
        var lanes = SessionLanes.All;

        await delayed.SubmitAsync(producer, tally, Enumerable.Range(0, ProducerTasks)
            .Select(i => ($"producer-{i}", lanes[i % lanes.Count], TimeSpan.FromMilliseconds(4000 + i * 20_000 / ProducerTasks))), parallel: 50);
        // Paced (25 at a time), so the kill below lands while raw tasks are still arriving and being parked.
        var publishing = delayed.PublishRawAsync(raw, tally, Enumerable.Range(0, RawTasks)
            .Select(i => ($"raw-{i}", lanes[i % lanes.Count], TimeSpan.FromMilliseconds(12_000 + i * 12_000 / RawTasks))), parallel: 25);

        // Bounded without failing here: a consumer that parks nothing (kept the delays itself) is killed too, and is then
        // judged by what it lost.
        var waitForParking = DateTime.UtcNow.AddSeconds(8); // before the first raw task (12 s) is due
        while (Parked(first) < ParkedBeforeKill && DateTime.UtcNow < waitForParking)
            await Task.Delay(50);
        foreach (var consumer in first)
            consumer.KillHard();
        var killedAt = DateTimeOffset.UtcNow;
        var parkedAtKill = Parked(first);
        // Every raw task whose publish had begun (its due time is recorded before the publish): only these can have been in a
        // killed consumer's hands.
        var rawBeforeKill = delayed.Due.Keys.Where(id => id.StartsWith("raw-", StringComparison.Ordinal)).ToHashSet(StringComparer.Ordinal);
        var rawConfirmedAtKill = rawBeforeKill.Count;
        output.WriteLine($"{killedAt:HH:mm:ss.fff} killed all {first.Count} consumers (kill -9): {parkedAtKill} raw tasks parked, {rawConfirmedAtKill} of {RawTasks} raw published");

        await publishing;
        await Task.Delay(TimeSpan.FromSeconds(3));
        var holdingWithoutConsumers = await DelayedTasks.HoldingAsync(Node, Vhost, live: true);
        Consumers.AddRange(await Task.WhenAll(new[] { "second-a", "second-b", "second-c" }.Select(name => ConsumerProcess.StartAsync(url, name))));
        var restartedAt = DateTimeOffset.UtcNow;
        output.WriteLine($"{restartedAt:HH:mm:ss.fff} three new consumers started; without consumers: {holdingWithoutConsumers}");

        var counts = await tally.WaitForAllAsync(TimeSpan.FromSeconds(90), output.WriteLine);
        var early = delayed.StartedEarly(tally);
        var ranOnFirst = tally.AcceptedIds.Count(id => tally.ResultsOf(id).Any(r => r.Consumer?.StartsWith("first-", StringComparison.Ordinal) == true));
        // A second run can only come from two copies of a task: one a killed consumer had confirmed into the delay tree but not
        // acked, and the lane's redelivery of it, parked again; both come due at the same moment, and two consumers can take
        // them before either hears of the other's run (wire-contract.md §9, Limits: at least once).
        var ranTwice = delayed.RanTwice(tally);
        var ranTwiceDetail = DelayedTasks.Runs(tally, ranTwice);
        var report = $"{counts}; ran twice: {ranTwice.Count} [{ranTwiceDetail}]; parked when killed: {parkedAtKill} of {RawTasks} raw ({rawConfirmedAtKill} published); " +
                     $"results from the killed consumers: {ranOnFirst}; started early: {early.Count}";
        output.WriteLine(report);
        if (ranTwice.Count > 0)
            output.WriteLine("consumer logs: " + string.Join(", ", Consumers.Select(c => c.SaveOutput("delayed-kill"))));
        Evidence.Write("delayed-kill", new
        {
            Fault = "kill -9 of all 3 consumer processes while delayed tasks wait in the delay tree and raw ones are being parked; 3 new consumers 3 s after the raw publishing ended",
            ProducerTasks,
            ProducerDelays = "4-24 s",
            RawTasksToTheLanes = RawTasks,
            RawDelays = "12-24 s",
            RawParkedWhenKilled = parkedAtKill,
            RawPublishedWhenKilled = rawConfirmedAtKill,
            CompletedByTheKilledConsumers = ranOnFirst,
            InTheDelayTreeWithoutConsumers = holdingWithoutConsumers.InDelayTree,
            InTheLanesWithoutConsumers = holdingWithoutConsumers.InLanes,
            NewConsumersAfterSeconds = Math.Round((restartedAt - killedAt).TotalSeconds, 1),
            counts.Accepted,
            counts.Completed,
            RanTwice = counts.Duplicated,
            counts.StartedTwice,
            RanTwiceAllPublishedBeforeTheKill = ranTwice.All(rawBeforeKill.Contains),
            AnsweredDuplicate = counts.DuplicateSkips,
            counts.Lost,
            StartedEarly = early.Count,
        }, report);

        Assert.True(counts.Lost == 0, $"lost:\n{tally.DescribeMissing()}\n{report}\n{await Node.QueuesAsync(Vhost)}\n" +
                                      string.Join("\n", Consumers.Skip(first.Count).Select(c => $"--- {c.Name} ---\n{ConsumerKillTests.Tail(c.Output, 30)}")));
        Assert.True(parkedAtKill is > 0 and < RawTasks, $"the kill must come while the consumers are parking raw tasks; {report}");
        Assert.Equal(ProducerTasks + RawTasks, counts.Completed);
        Assert.True(ranTwice.All(rawBeforeKill.Contains),
            $"a task ran twice that no killed consumer can have held (a .NET producer's task, or a raw one published after the kill); {report}");
        Assert.True(early.Count == 0, $"started before due: {string.Join(", ", early.Take(10))}; {report}");
    }
}
