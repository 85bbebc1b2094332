using LaneQueue.Bench.Infra;
using LaneQueue.Contracts;
using LaneQueue.Producer;

namespace LaneQueue.Bench.Scenarios;

/// <summary>
/// 5. Memory: a consumer process's RSS (VmRSS) idle, then while a large generate backlog waits at the broker.
/// Prefetch bounds what the consumer holds, so RSS must not grow with the backlog. A process warms up as it starts
/// running tasks (JIT, GC heap, thread pool), so each variant runs two identical consumers side by side, each in its
/// own vhost, doing the same work at the same time: one with the large backlog, one with a small one. The difference
/// between the two is what the backlog costs.
/// </summary>
public static class Memory
{
    sealed record Variant(string Key, string Name, bool PriorityTopology);

    static readonly Variant[] Variants =
    [
        new("lanequeue-lanes", "LaneQueue, queue per lane", false),
        new("lanequeue-priority", "LaneQueue, priority-queue topology", true),
    ];

    const int Steps = 4;
    const int SmallBacklog = 2_000;

    public static async Task RunAsync(BenchContext context, ScenarioResult result)
    {
        var settings = context.Settings;
        // Strict (full run): 16 MiB; relaxed (--quick, CI): 32 MiB.
        var tolerance = settings.Target(16, 32);
        result.Columns.AddRange(
        [
            new("variant", "variant"),
            new("idle_mib", "idle", "MiB"),
        ]);
        for (var s = 1; s <= Steps; s++)
            result.Columns.Add(new($"rss_{s}_mib", $"{settings.MemoryBacklog * s / Steps:N0} waiting", "MiB"));
        result.Columns.Add(new("small_mib", $"same work, <= {SmallBacklog:N0} waiting", "MiB"));
        result.Columns.Add(new("backlog_cost_mib", "large - small backlog", "MiB"));
        foreach (var variant in Variants)
        {
            BenchContext.Log($"  memory: {variant.Name}");
            var row = await MeasureAsync(context, variant);
            result.Rows.Add(row);
            var cost = (double)row["backlog_cost_mib"]!;
            result.Verdicts.Add(new Verdict($"{variant.Name}: RSS does not grow with the backlog (large - small <= {tolerance} MiB){settings.TargetKind}",
                cost <= tolerance, $"{row["rss_4_mib"]} MiB with {settings.MemoryBacklog:N0} waiting vs {row["small_mib"]} MiB with <= {SmallBacklog:N0} waiting"));
        }
        result.Notes.Add("Two consumer processes per variant, default configuration (generate max concurrency 1, slot budget 4), each in its own " +
                         $"vhost, both running generate tasks (sleep {settings.GenerateMs} ms) at the same rate. One gets the large backlog, " +
                         $"published in {Steps} equal steps, with RSS read after each; the other gets {SmallBacklog:N0} tasks at the start. " +
                         "RSS = VmRSS from /proc/<pid>/status; idle = after start-up and a pause, before any task.");
    }

    static async Task<Dictionary<string, object?>> MeasureAsync(BenchContext context, Variant variant)
    {
        var settings = context.Settings;
        var ct = context.Token;
        await using var largeVhost = await context.Broker.CreateVhostAsync("mem", ct);
        await using var smallVhost = await context.Broker.CreateVhostAsync("mem-small", ct);
        using var largeFleet = await context.StartLaneQueueFleetAsync(largeVhost, 1, [], variant.PriorityTopology, "mem");
        using var smallFleet = await context.StartLaneQueueFleetAsync(smallVhost, 1, [], variant.PriorityTopology, "mem-small");
        var large = largeFleet.Processes[0];
        var small = smallFleet.Processes[0];
        await Task.Delay(settings.Quick ? 1000 : 3000, ct);
        var idle = Mib(large.RssKiB());
        var idleSmall = Mib(small.RssKiB());
        var topology = variant.PriorityTopology ? LaneTopology.PriorityQueue : LaneTopology.QueuePerLane;
        await using var largeProducer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = largeVhost.Url, Topology = topology }, ct);
        await using var smallProducer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = smallVhost.Url, Topology = topology }, ct);
        var queue = variant.PriorityTopology ? BrokerNames.PriorityQueue : BrokerNames.LaneQueue(SessionLane.Generate);
        var row = new Dictionary<string, object?> { ["key"] = variant.Key, ["variant"] = variant.Name, ["idle_mib"] = Stats.Round(idle), ["idle_small_mib"] = Stats.Round(idleSmall) };

        await Submit.ManyAsync(SmallBacklog, i => smallProducer.SubmitTaskAsync(Submit.Sleep($"g-{i}", SessionLane.Generate, settings.GenerateMs), ct), ct);
        var step = settings.MemoryBacklog / Steps;
        var rss = new List<double>();
        var smallRss = new List<double>();
        var ready = new List<uint>();
        for (var s = 1; s <= Steps; s++)
        {
            var offset = (s - 1) * step;
            // Keep the small consumer's backlog topped up to SmallBacklog, so both consumers stay equally busy.
            var smallReady = (int)((await smallVhost.QueueAsync(queue, ct))?.Ready ?? 0);
            var topUp = SmallBacklog - smallReady;
            await Submit.ManyAsync(topUp, i => smallProducer.SubmitTaskAsync(Submit.Sleep($"t-{s}-{i}", SessionLane.Generate, settings.GenerateMs), ct), ct);
            await Submit.ManyAsync(step, i => largeProducer.SubmitTaskAsync(Submit.Sleep($"g-{offset + i}", SessionLane.Generate, settings.GenerateMs), ct), ct);
            await Task.Delay(settings.MemorySettleMs, ct);
            rss.Add(Mib(large.RssKiB()));
            smallRss.Add(Mib(small.RssKiB()));
            ready.Add((await largeVhost.QueueAsync(queue, ct))?.Ready ?? 0);
            row[$"rss_{s}_mib"] = Stats.Round(rss[^1]);
            BenchContext.Log($"    {ready[^1]} waiting: RSS {rss[^1]:0.0} MiB; the same consumer with a small backlog: {smallRss[^1]:0.0} MiB");
        }
        var smallLeft = (await smallVhost.QueueAsync(queue, ct))?.Ready ?? 0;
        if (smallLeft == 0)
            BenchContext.Log("    warning: the small backlog ran out: the two consumers did not do the same work");
        row["small_mib"] = Stats.Round(smallRss[^1]);
        row["small_series_mib"] = smallRss.Select(r => Stats.Round(r)).ToList();
        row["backlog_cost_mib"] = Stats.Round(rss[^1] - smallRss[^1]);
        row["growth_first_to_last_step_mib"] = Stats.Round(rss[^1] - rss[0]);
        row["small_growth_same_time_mib"] = Stats.Round(smallRss[^1] - smallRss[0]);
        row["ready_at_steps"] = ready;
        row["small_backlog_left"] = smallLeft;
        return row;
    }

    static double Mib(long? kib) => kib is { } k ? k / 1024.0 : double.NaN;
}
