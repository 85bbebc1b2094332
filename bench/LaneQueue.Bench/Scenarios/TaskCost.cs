using System.Diagnostics;
using System.Text.Json;
using LaneQueue.Bench.Infra;
using LaneQueue.Contracts;
using LaneQueue.Producer;

namespace LaneQueue.Bench.Scenarios;

/// <summary>
/// 9. What a delayed task and a de-duplication key cost the broker, next to a plain task: echo tasks into the execute lane,
/// one consumer process, each variant in a fresh vhost; broker CPU per task (beam.smp, /proc), and the messages the broker
/// stored and delivered per task (every queue's <c>publish</c> and <c>deliver_get</c> counters in the management API, read once
/// its statistics have caught up). Rounds go through the variants in turn; the best round (least broker CPU) is shown.
/// </summary>
public static class TaskCost
{
    sealed record Variant(string Key, string Name, Func<ExternalTask, int, ExternalTask> Shape);

    static readonly Variant[] Variants =
    [
        new("plain", "plain task", (t, _) => t),
        new("delayed", "delayed task (delay_ms 200)", (t, _) => t.After(TimeSpan.FromMilliseconds(200))),
        new("dedup-unique", "task with its own dedup_key (it runs)", (t, i) => t.DedupedBy($"key-{i}", TimeSpan.FromSeconds(10))),
        new("dedup-same", "task whose dedup_key another holds (answered duplicate)", (t, _) => t.DedupedBy("one-key", TimeSpan.FromMinutes(5))),
        new("debounce-unique", "debounced task with its own key (delay_ms 200, it runs)",
            (t, i) => t.After(TimeSpan.FromMilliseconds(200)).DebouncedBy($"key-{i}", TimeSpan.FromSeconds(10))),
        new("debounce-same", "debounced task, one key for all (delay_ms 200, replaced by a later one)",
            (t, _) => t.After(TimeSpan.FromMilliseconds(200)).DebouncedBy("one-key", TimeSpan.FromMinutes(5))),
    ];

    public static async Task RunAsync(BenchContext context, ScenarioResult result)
    {
        var settings = context.Settings;
        var n = settings.Quick ? 300 : 2_000;
        var rounds = settings.Quick ? 1 : 2;
        result.Columns.AddRange(
        [
            new("variant", "variant"),
            new("e2e_per_s", "end to end", "tasks/s"),
            new("broker_cpu_us", "broker CPU per task", "µs"),
            new("broker_cpu_vs_plain", "vs plain", "x"),
            new("stored_per_task", "publishes into queues per task", ""),
            new("delivered_per_task", "deliveries and gets per task", ""),
            new("consumer_cpu_us", "consumer CPU per task", "µs"),
        ]);
        if (settings.Quick && settings.Only is null)
        {
            // No verdict to gate on, and CI's quick run has a 5-minute cap: only when asked for (--only cost).
            result.Notes.Add("Not run in a whole --quick run (it checks nothing and takes about a minute). Run it with `bash scripts/bench.sh --only cost`.");
            return;
        }
        var node = (await context.Broker.GetAsync("api/overview", context.Token)).GetProperty("node").GetString();
        var brokerPid = ChildProcess.FindBrokerPid(node);
        var measured = Variants.ToDictionary(v => v.Key, _ => new List<Measurement>());
        for (var round = 1; round <= rounds; round++)
        {
            foreach (var variant in Variants)
            {
                BenchContext.Log($"  task cost round {round}: {variant.Name}");
                measured[variant.Key].Add(await MeasureAsync(context, variant, n, brokerPid));
            }
        }
        foreach (var variant in Variants)
        {
            var best = measured[variant.Key].MinBy(m => double.IsNaN(m.BrokerCpuMicros) ? double.MaxValue : m.BrokerCpuMicros)!;
            result.Rows.Add(new Dictionary<string, object?>
            {
                ["key"] = variant.Key,
                ["variant"] = variant.Name,
                ["tasks"] = n,
                ["e2e_per_s"] = Stats.Round(best.EndToEnd, 0),
                ["broker_cpu_us"] = Stats.Round(best.BrokerCpuMicros, 0),
                ["stored_per_task"] = Stats.Round(best.StoredPerTask, 2),
                ["delivered_per_task"] = Stats.Round(best.DeliveredPerTask, 2),
                ["consumer_cpu_us"] = Stats.Round(best.ConsumerCpuMicros, 0),
            });
        }
        var plain = (double)result.Rows[0]["broker_cpu_us"]!;
        foreach (var row in result.Rows)
            row["broker_cpu_vs_plain"] = Stats.Round((double)row["broker_cpu_us"]! / plain, 2);
        result.Notes.Add($"{n} echo tasks per measurement into the execute lane (LaneQueueProducer.SubmitTaskAsync, confirmed), one consumer process with " +
                         $"default settings, after a warm-up of {Warmup} plain tasks in the same process; {rounds} round(s), the one with the least broker CPU shown. " +
                         "Broker CPU: user + system time of the local beam.smp over the phase, per task (includes the bench's own publishes and result reads, " +
                         "the same for every variant). Publishes / deliveries: the management API's publish and deliver_get counters over the phase, per task, " +
                         "summed over the queues on the task's own path: the execute lane (and its _error queue), the delay tree's hop queues, the key's claim and " +
                         "owner queues (not heartbeats, fleet broadcasts, results or the history stream: the same for every variant). A message the broker " +
                         "dead-letters from one hop queue to the next is not a publish in these counters: the delay tree's hops show in the broker's CPU only.");
        result.Notes.Add("Delayed: the producer publishes into the delay tree; 200 ms is 5 units of 50 ms (200 + the 40 ms margin, rounded up), binary 101: 2 hop queues " +
                         "on its way to the lane. Dedup: the consumer declares the key's claim and owner queues and publishes a claim (confirmed) and, when it " +
                         "wins, an owner record; a task that finds its key held publishes a claim (nacked), reads and returns the owner record, and is answered " +
                         "duplicate without running. Debounce: the producer sends the task to its lane; the consumer that reads it declares the key's " +
                         "latest-task queue, publishes the task's id to it (confirmed) and parks the task in the delay tree; when it comes due, a consumer " +
                         "declares that queue again, reads the record and returns it, then runs the task or (one key for all: a later task was seen) " +
                         "answers it duplicate.");
        if (brokerPid is null)
            result.Notes.Add($"Broker node {node}: its process is not visible here; broker CPU is n/a.");
    }

    const int Warmup = 1_000;

    sealed record Measurement(double EndToEnd, double BrokerCpuMicros, double ConsumerCpuMicros, double StoredPerTask, double DeliveredPerTask);

    static async Task<Measurement> MeasureAsync(BenchContext context, Variant variant, int n, int? brokerPid)
    {
        var ct = context.Token;
        await using var vhost = await context.Broker.CreateVhostAsync("cost", ct);
        await using var listener = await ResultListener.StartAsync(vhost.Url, ct);
        using var fleet = await context.StartLaneQueueFleetAsync(vhost, 1, [], priorityTopology: false, "cost");
        var consumer = fleet.Processes[0];
        await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = vhost.Url }, ct);

        await Submit.ManyAsync(Warmup, i => producer.SubmitTaskAsync(Submit.Echo($"w-{i}", SessionLane.Execute), ct), ct);
        if (!await ResultListener.UntilAsync(() => listener.Count >= Warmup, TimeSpan.FromMinutes(2), ct, pollMs: 5))
            throw new TimeoutException($"warm-up: {listener.Count} of {Warmup} results");
        var (storedBefore, deliveredBefore) = await CountersAsync(context, vhost, ct);

        var brokerCpu = brokerPid is { } bp ? ChildProcess.CpuTimeOf(bp) : null;
        var consumerCpu = consumer.CpuTime();
        var start = DateTimeOffset.UtcNow;
        var clock = Stopwatch.StartNew();
        await Submit.ManyAsync(n, i => producer.SubmitTaskAsync(variant.Shape(Submit.Echo($"t-{i}", SessionLane.Execute), i), ct), ct);
        if (!await ResultListener.UntilAsync(() => listener.Count >= Warmup + n, TimeSpan.FromMinutes(3), ct, pollMs: 2))
            throw new TimeoutException($"{variant.Name}: {listener.Count - Warmup} of {n} results in 3 minutes");
        var end = listener.All.Max(r => r.ReceivedAt);
        var brokerMicros = brokerPid is { } pid && brokerCpu is { } before && ChildProcess.CpuTimeOf(pid) is { } after
            ? (after - before).TotalMicroseconds / n
            : double.NaN;
        var consumerMicros = (consumer.CpuTime() - consumerCpu)?.TotalMicroseconds / n ?? double.NaN;
        var (storedAfter, deliveredAfter) = await CountersAsync(context, vhost, ct);
        var e2e = n / (end - start).TotalSeconds;
        BenchContext.Log($"    {n / clock.Elapsed.TotalSeconds:0}/s published, end to end {e2e:0}/s; broker {brokerMicros:0} µs per task, " +
                         $"stored {(storedAfter - storedBefore) / (double)n:0.00}, delivered {(deliveredAfter - deliveredBefore) / (double)n:0.00} per task");
        return new Measurement(e2e, brokerMicros, consumerMicros, (storedAfter - storedBefore) / (double)n, (deliveredAfter - deliveredBefore) / (double)n);
    }

    /// <summary>
    /// The publish and deliver_get totals of the queues on a task's own path (the execute lane, the delay tree's hop queues, the
    /// de-duplication claim and owner queues), read after 6 s: the management statistics are refreshed every 5 s. Heartbeats,
    /// fleet broadcasts, results and the history stream are left out (the same for every variant, and they keep moving).
    /// </summary>
    static async Task<(long Stored, long Delivered)> CountersAsync(BenchContext context, Vhost vhost, CancellationToken ct)
    {
        await Task.Delay(TimeSpan.FromSeconds(6), ct);
        var queues = await context.Broker.GetAsync($"api/queues/{Uri.EscapeDataString(vhost.Name)}?columns=name,message_stats", ct);
        long stored = 0, delivered = 0;
        foreach (var queue in queues.EnumerateArray())
        {
            var name = queue.GetProperty("name").GetString() ?? "";
            if (!(name.StartsWith("lanequeue.execute", StringComparison.Ordinal) || name.StartsWith("lanequeue.delay.", StringComparison.Ordinal)
                  || name.StartsWith("lanequeue.dedup.", StringComparison.Ordinal)))
                continue;
            if (!queue.TryGetProperty("message_stats", out var stats) || stats.ValueKind != JsonValueKind.Object)
                continue;
            stored += stats.TryGetProperty("publish", out var p) ? p.GetInt64() : 0;
            delivered += stats.TryGetProperty("deliver_get", out var d) ? d.GetInt64() : 0;
        }
        return (stored, delivered);
    }
}
