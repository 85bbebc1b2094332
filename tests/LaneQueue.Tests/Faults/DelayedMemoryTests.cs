using LaneQueue.Contracts;
using LaneQueue.Producer;
using LaneQueue.Tests.Broker;
using Xunit.Abstractions;

namespace LaneQueue.Tests.Faults;

/// <summary>
/// Delayed tasks wait at the broker, not in a consumer: 10,000 published raw to their lanes (the consumer reads each one
/// and parks it in the delay tree) and 10,000 from the .NET producer (straight into the tree), all due in 10 minutes, cost a
/// consumer process (<c>LaneQueue.TestWorker</c>, workstation GC) no more resident memory (<c>VmRSS</c>) than a control step
/// of 10,000 immediate tasks published the same raw way cost it, in the same test, on the same process. The consumer has no
/// managed-heap read-out of its own (only health and <c>/metrics</c>), so the measure is RSS, settled like
/// <see cref="OversizedBodyMemoryTests"/> does: the lowest of five readings after a few idle seconds.
/// </summary>
[Collection(FaultCollection.Name)]
public sealed class DelayedMemoryTests(FaultBrokerFixture broker, ITestOutputHelper output) : FaultTest(broker, "lq-delay-mem")
{
    const int Tasks = 10_000;
    const int SettleSeconds = 6;

    /// <summary>
    /// What the delayed step may add to the RSS beyond the control step's own change (either way): 10 % of the RSS after the
    /// control. A consumer holding the 10,000 tasks it read (deliveries, bodies, parsed tasks, timers) would be far beyond it.
    /// </summary>
    const double RelativeMargin = 0.10;

    static readonly TimeSpan Delay = TimeSpan.FromMinutes(10);

    static Task<double> SettledRssAsync(ConsumerProcess consumer) => OversizedBodyMemoryTests.SettledRssAsync(consumer, SettleSeconds);

    static IEnumerable<(string Id, SessionLane Lane, TimeSpan Delay)> Batch(string prefix, int count, TimeSpan delay) =>
        Enumerable.Range(0, count).Select(i => ($"{prefix}-{i}", SessionLanes.All[i % SessionLanes.All.Count], delay));

    [Fact]
    public async Task Twenty_thousand_waiting_delayed_tasks_cost_the_consumer_no_more_memory_than_ten_thousand_immediate_ones()
    {
        var url = Node.Url(Vhost);
        // Warning: the 20,000 "delayed" lines at Information would be most of what the process does and keeps.
        var consumer = await ConsumerProcess.StartAsync(url, "mem-consumer", ["--Logging:LogLevel:Default=Warning"]);
        Consumers.Add(consumer);
        await using var tally = await ResultTally.StartAsync(url);
        await using var raw = await RawClient.ConnectAsync(url);
        await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = url, ClientName = "delay-mem-producer" });
        var delayed = new DelayedTasks();

        // Warm-up: both paths the steps below take (run, park), so the JIT and pools are there before the first reading.
        await delayed.PublishRawAsync(raw, tally, Batch("warm", 500, TimeSpan.Zero));
        await delayed.PublishRawAsync(raw, tally, Batch("warm-delayed", 200, Delay));
        await tally.WaitForAllAsync(TimeSpan.FromSeconds(60), ignore: Batch("warm-delayed", 200, Delay).Select(t => t.Id).ToHashSet());
        var before = await SettledRssAsync(consumer);

        // Control: 10,000 immediate tasks the same raw way: read, run, answered.
        var controlIds = Batch("control", Tasks, TimeSpan.Zero).ToList();
        await delayed.PublishRawAsync(raw, tally, controlIds);
        var waiting = Batch("warm-delayed", 200, Delay).Select(t => t.Id).ToHashSet();
        var control = await tally.WaitForAllAsync(TimeSpan.FromSeconds(120), output.WriteLine, ignore: waiting);
        Assert.True(controlIds.All(t => tally.ResultsOf(t.Id).Any(r => r.Status == TaskStatuses.Completed)), $"the control step did not complete: {control}");
        var afterControl = await SettledRssAsync(consumer);

        // 10,000 raw to the lanes (the consumer parks each one) and 10,000 from the .NET producer (straight into the tree).
        var rawDelayed = Batch("raw-delayed", Tasks, Delay).ToList();
        var producerDelayed = Batch("producer-delayed", Tasks, Delay).ToList();
        var published = DateTime.UtcNow;
        await Task.WhenAll(delayed.PublishRawAsync(raw, tally, rawDelayed), delayed.SubmitAsync(producer, tally, producerDelayed));
        var holding = await DelayedTasks.WaitUntilParkedAsync(Node, Vhost, 2 * Tasks + waiting.Count, TimeSpan.FromSeconds(90));
        var parkedIn = DateTime.UtcNow - published;
        var afterDelayed = await SettledRssAsync(consumer);

        var delayedIds = rawDelayed.Concat(producerDelayed).Select(t => t.Id).Concat(waiting).ToList();
        var started = delayedIds.Count(id => tally.ResultsOf(id).Count > 0 || tally.StartsOf(id).Count > 0);
        var controlChange = afterControl - before;
        var delayedChange = afterDelayed - afterControl;
        var bound = Math.Abs(controlChange) + RelativeMargin * afterControl;
        var report = $"consumer RSS after warm-up {before:0.0} MiB; after {Tasks} immediate tasks (control) {afterControl:0.0} MiB ({controlChange:+0.0;-0.0}); " +
                     $"after {Tasks} raw delayed tasks parked by it and {Tasks} submitted into the tree {afterDelayed:0.0} MiB ({delayedChange:+0.0;-0.0}, bound {bound:0.0}); " +
                     $"{holding} (expected {2 * Tasks + waiting.Count} and 0, read {parkedIn.TotalSeconds:0} s after the first publish); delayed tasks started: {started}";
        output.WriteLine(report);
        Evidence.Write("delayed-memory", new
        {
            Measure = "consumer process VmRSS, lowest of 5 readings after 6 s idle (workstation GC)",
            WarmUp = "500 immediate + 200 raw delayed tasks",
            RssAfterWarmUpMib = Math.Round(before, 1),
            ControlImmediateTasks = Tasks,
            RssAfterControlMib = Math.Round(afterControl, 1),
            RawDelayedTasksParkedByTheConsumer = Tasks,
            ProducerDelayedTasksIntoTheTree = Tasks,
            DelayMinutes = Delay.TotalMinutes,
            RssAfterDelayedMib = Math.Round(afterDelayed, 1),
            ControlChangeMib = Math.Round(controlChange, 1),
            DelayedChangeMib = Math.Round(delayedChange, 1),
            BoundMib = Math.Round(bound, 1),
            holding.InDelayTree,
            holding.InLanes,
            DelayedTasksStarted = started,
        }, report);

        Assert.True(holding.InDelayTree == 2 * Tasks + waiting.Count && holding.InLanes == 0,
            $"every delayed task must wait in the delay tree: {holding}; {report}\n{await Node.QueuesAsync(Vhost)}");
        Assert.True(started == 0, $"{started} delayed tasks started 10 minutes early; {report}");
        Assert.False(consumer.HasExited, $"the consumer exited:\n{ConsumerKillTests.Tail(consumer.Output)}");
        Assert.True(delayedChange <= bound,
            $"the consumer grew by {delayedChange:0.0} MiB over the delayed step, beyond the control step's {controlChange:+0.0;-0.0} MiB " +
            $"+ {RelativeMargin:P0} of {afterControl:0.0} MiB; {report}");
    }
}
