using System.Diagnostics;
using LaneQueue.Bench.Infra;
using LaneQueue.Bench.Report;
using LaneQueue.Contracts;
using LaneQueue.Producer;

namespace LaneQueue.Bench.Scenarios;

/// <summary>
/// 1. Preemption latency. A fleet of 2 consumer processes is busy on a generate backlog (sleep 20 ms each); query tasks
/// (echo) arrive at a steady rate; each query's wait is its result's started_at minus the bench's clock just before
/// it published the query. The variants run each in its own vhost, one after the other in the same run. The equal-capacity
/// variant gives each process one slot (slot budget 1, generate concurrency 1): a query can only start in a slot a generate
/// task gives back, and the best the fleet can do is the first slot to free in either process. The reserved-query variant
/// gives generate the same capacity (one slot per process: generate concurrency 1) in a budget of 2 with one slot reserved
/// for query and the lanes above it (<c>ReservedSlots:Query=1</c>), so a query finds a free slot without waiting for a
/// generate run to end.
/// </summary>
public static class Preemption
{
    public enum Kind
    {
        QueuePerLane,
        QueuePerLaneEqualCapacity,
        QueuePerLaneReservedQuery,
        PriorityQueue,
        Fifo,
        XMaxPriority,
        XMaxPriorityLimited,
    }

    public sealed record Variant(string Key, string Name, Kind Kind);

    public static readonly Variant[] Variants =
    [
        new("lanequeue-lanes", "LaneQueue, queue per lane", Kind.QueuePerLane),
        new("lanequeue-equal-capacity", "LaneQueue, queue per lane, one slot per process", Kind.QueuePerLaneEqualCapacity),
        new("lanequeue-reserved-query", "LaneQueue, queue per lane, one generate slot + one reserved for query per process", Kind.QueuePerLaneReservedQuery),
        new("lanequeue-priority", "LaneQueue, priority-queue topology", Kind.PriorityQueue),
        new("fifo", "MassTransit defaults, one FIFO queue", Kind.Fifo),
        new("x-max-priority", "MassTransit defaults, x-max-priority queue", Kind.XMaxPriority),
        new("x-max-priority-limit-4", "MassTransit, x-max-priority queue, concurrency limit 4", Kind.XMaxPriorityLimited),
    ];

    const int FleetSize = 2;
    const int SlotBudget = 4;

    /// <summary>LaneQueue's fleet: slot budget 4 per process and generate allowed to fill it, so every slot is busy.</summary>
    static readonly string[] LaneQueueArgs = [$"--LaneQueue:SlotBudget={SlotBudget}", $"--LaneQueue:Queue:GenerateMaxConcurrency={SlotBudget}"];

    /// <summary>Equal capacity: one slot per process, generate allowed to take it.</summary>
    static readonly string[] EqualCapacityArgs = ["--LaneQueue:SlotBudget=1", "--LaneQueue:Queue:GenerateMaxConcurrency=1"];

    /// <summary>
    /// Generate keeps the equal-capacity variant's one slot per process; a second slot is reserved for query and the lanes above
    /// it (generate's limit of 1 and the reservation both keep generate out of it).
    /// </summary>
    static readonly string[] ReservedQueryArgs =
        ["--LaneQueue:SlotBudget=2", "--LaneQueue:ReservedSlots:Query=1", "--LaneQueue:Queue:GenerateMaxConcurrency=1"];

    /// <summary>LANEQUEUE_BENCH_VARIANTS=lanequeue-equal-capacity,lanequeue-reserved-query measures only those variants (a profiling aid; a partial run writes no verdict).</summary>
    static readonly HashSet<string>? Only = Environment.GetEnvironmentVariable("LANEQUEUE_BENCH_VARIANTS") is { Length: > 0 } keys
        ? keys.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).ToHashSet()
        : null;

    public static async Task RunAsync(BenchContext context, ScenarioResult result)
    {
        var settings = context.Settings;
        result.Columns.AddRange(
        [
            new("variant", "variant"),
            new("config", "consumer settings"),
            new("backlog_at_first_query", "generate backlog at 1st query"),
            new("generate_per_s", "generate started", "tasks/s"),
            new("samples", "queries"),
            new("p50_ms", "wait p50", "ms"),
            new("p99_ms", "wait p99", "ms"),
            new("max_ms", "wait max", "ms"),
            new("fifo_over_this_p99", "FIFO p99 / this p99", "x"),
            new("fleet_first_free_ms", "first slot free in the fleet p50 / max", "ms"),
            new("own_first_free_ms", "first slot free on its process p50 / max", "ms"),
            new("hand_off_ms", "the fleet's first free slot + one broker trip, p50 / max", "ms"),
            new("probe_ms", "the broker's own publish → delivery meanwhile, p50 / p99 / max", "ms"),
        ]);

        var runs = new Dictionary<string, QueryRun>();
        foreach (var variant in Variants.Where(v => Only is null || Only.Contains(v.Key)))
        {
            BenchContext.Log($"  preemption: {variant.Name}");
            var (row, waits, run) = await MeasureAsync(context, variant);
            result.Rows.Add(row);
            result.Samples[variant.Key] = waits;
            runs[variant.Key] = run;
            WriteTimeline(variant.Key, run);
        }
        if (runs.TryGetValue("lanequeue-equal-capacity", out var equalRun) && result.Rows.SingleOrDefault(r => (string)r["key"]! == "lanequeue-reserved-query") is { } reservedRow)
            AddFloors(result.Rows.Single(r => (string)r["key"]! == "lanequeue-equal-capacity"), equalRun, (double)reservedRow["p50_ms"]!);

        if (Only is not null)
            return; // a partial run: no FIFO row to compare with, no verdicts
        var fifoP99 = (double)result.Rows.Single(r => (string)r["key"]! == "fifo")["p99_ms"]!;
        // Strict (full run): one generate run + 50 ms, and 100x better than FIFO. Relaxed (--quick, CI): 10x that wait, and 10x
        // better than FIFO (whose wait is about 5x shorter with the quick run's smaller backlog).
        var limit = settings.Target(settings.GenerateMs + 50, 10 * (settings.GenerateMs + 50));
        var better = settings.Target(100, 10);
        foreach (var row in result.Rows)
        {
            var p99 = (double)row["p99_ms"]!;
            row["fifo_over_this_p99"] = Stats.Round(fifoP99 / Math.Max(p99, 0.1), 0);
        }
        foreach (var row in result.Rows.Where(r => ((string)r["key"]!).StartsWith("lanequeue", StringComparison.Ordinal)))
        {
            var p99 = (double)row["p99_ms"]!;
            var ratio = fifoP99 / Math.Max(p99, 0.1);
            result.Verdicts.Add(new Verdict($"{row["variant"]}: query wait p99 <= {(settings.Quick ? "10 x (one generate run + 50 ms)" : "one generate run + 50 ms")} ({limit} ms){settings.TargetKind}",
                p99 <= limit, $"p99 {p99:0.0} ms"));
            result.Verdicts.Add(new Verdict($"{row["variant"]}: p99 >= {better}x better than FIFO{settings.TargetKind}",
                ratio >= better, $"FIFO p99 {fifoP99:0} ms / {p99:0.0} ms = {ratio:0}x" +
                              (settings.Quick ? $" (quick: backlog {settings.PreemptionBacklog}, so FIFO waits are about 5x shorter than in the full run, whose backlog is 10,000)" : "")));
        }
        // Equal capacity: the first slot to free in either process is the limit (for two slots about a third of a run at the median).
        // Strict (full run, the issue's targets): p50 <= 8 ms and max <= 22 ms (one generate run + 2 ms). Relaxed (--quick, CI):
        // p50 <= 40 ms (two generate runs: a query that waits behind this process's prefetched generate delivery as well as the
        // running one); the max of 10 samples is checked by the p99 verdict above (with 10 samples p99 is the largest), not here.
        // Two quick runs on the shared, loaded 2-core machine measured p50 17.4 and 28.3 ms: a bound of one run (20 ms) would flake.
        var equal = result.Rows.Single(r => (string)r["key"]! == "lanequeue-equal-capacity");
        var (equalP50, equalMax) = ((double)equal["p50_ms"]!, (double)equal["max_ms"]!);
        if (settings.Quick)
        {
            result.Verdicts.Add(new Verdict($"{equal["variant"]}: query wait p50 <= 40 ms{settings.TargetKind}",
                equalP50 <= 40, $"p50 {equalP50:0.0} ms, max {equalMax:0.0} ms"));
        }
        else
        {
            result.Verdicts.Add(new Verdict($"{equal["variant"]}: query wait p50 <= 8 ms and max <= 22 ms",
                equalP50 <= 8 && equalMax <= 22, $"p50 {equalP50:0.0} ms, max {equalMax:0.0} ms (floors from this run, p50 / max: the first slot " +
                                                  $"given back in the fleet once the query could be there {equal["fleet_first_free_ms"]} ms, on the process " +
                                                  $"the broker gave it to {equal["own_first_free_ms"]} ms; with a hand-off costing one broker trip " +
                                                  $"{equal["hand_off_ms"]} ms; the broker's own publish -> delivery meanwhile p50 / p99 / max {equal["probe_ms"]} ms)"));
        }
        // Reserved slot: a query never waits for a generate run, only for its publish, delivery and the scheduler (strict p50
        // <= 3 ms; relaxed <= 20 ms, one generate run: a query with a slot of its own must not wait like one without). Two quick
        // runs on the shared, loaded 2-core machine measured p50 2.1 and 9.8 ms: a bound of 10 ms would flake.
        var reserved = result.Rows.Single(r => (string)r["key"]! == "lanequeue-reserved-query");
        var (reservedP50, reservedMax) = ((double)reserved["p50_ms"]!, (double)reserved["max_ms"]!);
        var reservedLimit = settings.Target(3, 20);
        result.Verdicts.Add(new Verdict($"{reserved["variant"]}: query wait p50 <= {reservedLimit} ms{settings.TargetKind}",
            reservedP50 <= reservedLimit, $"p50 {reservedP50:0.0} ms, max {reservedMax:0.0} ms (equal capacity: p50 {equalP50:0.0} ms, max {equalMax:0.0} ms)"));
        result.Notes.Add($"Fleet: {FleetSize} consumer processes per variant. LaneQueue: slot budget {SlotBudget} and generate max concurrency " +
                         $"{SlotBudget} (every slot busy with generate work, prefetch = concurrency); baselines: MassTransit's defaults " +
                         "(prefetch and concurrent message limit not set), see the config column for what they resolved to. The last " +
                         $"baseline keeps MassTransit's default prefetch but limits concurrency to {SlotBudget} (ConcurrentMessageLimit, as " +
                         "MassTransit's documentation recommends for limiting concurrency): the same number of tasks at once as LaneQueue, " +
                         "so prefetched generate messages wait in the consumer, ahead of the query.");
        result.Notes.Add("Generate capacity of one slot per process in two rows: 'one slot per process' (slot budget 1, generate concurrency 1: " +
                         "a query starts only in a slot a generate run gives back) and 'one generate slot + one reserved for query' (slot budget 2, " +
                         "--LaneQueue:ReservedSlots:Query=1, generate concurrency 1: a second slot only query and the lanes above it may use). " +
                         "Their verdicts: one slot p50 <= 8 ms and max <= 22 ms, reserved p50 <= 3 ms (--quick: p50 <= 40 ms and <= 20 ms). " +
                         "The one-slot row's two floors come from the same run: for each query, the first task to finish (a slot given back) " +
                         "after the query could be there (its publish + the reserved row's wait p50, which is publish, confirm, delivery and " +
                         "start with a slot free), anywhere in the fleet (the best any scheduler could do here) and on the process that ran " +
                         "the query (what a query waits when it stays with the process the broker delivered it to, as LaneQueue's do). " +
                         "A third column estimates a fleet-wide hand-off, which LaneQueue does not have: a query moves to the other process " +
                         "when that one gives a slot back first, and pays one more trip through the broker for it (taken as the reserved " +
                         "row's p50), so it waits for the earlier of its own process's free slot and the other's plus that trip.");
        result.Notes.Add("Control, every row: while its queries are measured, a probe publishes a persistent message every 20 ms to a queue " +
                         "of its own in the row's vhost, with a consumer that always has credit, and times publish -> delivery (no LaneQueue " +
                         "code on the way). Its spikes are the broker's and the machine's; a query wait of the same size at the same time is not " +
                         "the scheduler's.");
        result.Notes.Add($"Backlog {settings.PreemptionBacklog} generate tasks (sleep {settings.GenerateMs} ms) published after the fleet is up; " +
                         $"then {settings.PreemptionSamples} query tasks (echo) at {settings.QueryRatePerSecond}/s. " +
                         "Wait = result started_at - the bench's clock just before publishing (includes publish + confirm). " +
                         $"Percentiles are nearest rank: with {settings.PreemptionSamples} samples p99 is the largest sample.");
    }

    static string? Word(string line, string prefix) =>
        line.Split(' ').FirstOrDefault(w => w.StartsWith(prefix, StringComparison.Ordinal))?[prefix.Length..];

    static async Task<(Dictionary<string, object?> Row, List<double> Waits, QueryRun Run)> MeasureAsync(BenchContext context, Variant variant)
    {
        var settings = context.Settings;
        var ct = context.Token;
        await using var vhost = await context.Broker.CreateVhostAsync("pre", ct);
        await using var listener = await ResultListener.StartAsync(vhost.Url, ct);
        var laneQueue = variant.Kind is Kind.QueuePerLane or Kind.QueuePerLaneEqualCapacity or Kind.QueuePerLaneReservedQuery or Kind.PriorityQueue;
        var priority = variant.Kind is Kind.XMaxPriority or Kind.XMaxPriorityLimited;
        var baselineQueue = variant.Kind == Kind.Fifo ? "bench.fifo" : "bench.priority";
        using var fleet = laneQueue
            ? await context.StartLaneQueueFleetAsync(vhost, FleetSize, variant.Kind switch
                {
                    Kind.QueuePerLaneEqualCapacity => EqualCapacityArgs,
                    Kind.QueuePerLaneReservedQuery => ReservedQueryArgs,
                    _ => LaneQueueArgs,
                }, variant.Kind == Kind.PriorityQueue, "pre")
            : await context.StartBaselineFleetAsync(vhost, FleetSize, baselineQueue, priority ? (byte)4 : null, "pre",
                concurrency: variant.Kind == Kind.XMaxPriorityLimited ? SlotBudget : null);

        await using var producer = laneQueue ? await LaneQueueProducer.ConnectAsync(new ProducerOptions
            {
                RabbitMqUrl = vhost.Url,
                Topology = variant.Kind == Kind.PriorityQueue ? LaneTopology.PriorityQueue : LaneTopology.QueuePerLane,
            }, ct) : null;
        await using var raw = laneQueue ? null : await RawPublisher.ConnectAsync(vhost.Url, ct);
        Task SubmitAsync(ExternalTask task) => producer is not null
            ? producer.SubmitTaskAsync(task, ct)
            : raw!.PublishAsync(baselineQueue, task, withPriority: priority, ct);

        var publish = Stopwatch.StartNew();
        await Submit.ManyAsync(settings.PreemptionBacklog, i => SubmitAsync(Submit.Sleep($"g-{i}", SessionLane.Generate, settings.GenerateMs)), ct);
        var publishSeconds = publish.Elapsed.TotalSeconds;
        if (!await ResultListener.UntilAsync(() => listener.Count >= 20, TimeSpan.FromSeconds(30), ct))
            throw new TimeoutException($"{variant.Name}: the fleet did not start the backlog within 30 s");

        var backlogQueue = variant.Kind switch
        {
            Kind.QueuePerLane or Kind.QueuePerLaneEqualCapacity or Kind.QueuePerLaneReservedQuery => BrokerNames.LaneQueue(SessionLane.Generate),
            Kind.PriorityQueue => BrokerNames.PriorityQueue,
            _ => baselineQueue,
        };
        var backlogAtStart = (await vhost.QueueAsync(backlogQueue, ct))?.Ready ?? 0;

        // The control: the broker's own publish -> delivery time while the queries are measured (BrokerProbe).
        await using var probe = await BrokerProbe.StartAsync(vhost.Url, TimeSpan.FromMilliseconds(20), ct);
        var windowStart = DateTimeOffset.UtcNow;
        var submitted = new List<(string Id, DateTimeOffset At)>();
        var publishes = new List<Task>();
        var clock = Stopwatch.StartNew();
        var interval = 1000.0 / settings.QueryRatePerSecond;
        for (var k = 0; k < settings.PreemptionSamples; k++)
        {
            var due = TimeSpan.FromMilliseconds(k * interval) - clock.Elapsed;
            if (due > TimeSpan.Zero)
                await Task.Delay(due, ct);
            var id = $"q-{k}";
            submitted.Add((id, DateTimeOffset.UtcNow));
            publishes.Add(SubmitAsync(Submit.Echo(id, SessionLane.Query)));
        }
        await Task.WhenAll(publishes);
        var windowEnd = DateTimeOffset.UtcNow;
        var backlogAtEnd = (await vhost.QueueAsync(backlogQueue, ct))?.Ready ?? 0;

        // A FIFO query waits for the backlog ahead of it: bounded by the whole backlog's drain, capped at 5 minutes.
        var deadline = Stopwatch.StartNew();
        var waits = new List<double>();
        var queries = new List<(DateTimeOffset At, TaskOutcome Outcome)>();
        foreach (var (id, at) in submitted)
        {
            var left = TimeSpan.FromMinutes(5) - deadline.Elapsed;
            var outcome = await listener.WaitForAsync(id, left > TimeSpan.Zero ? left : TimeSpan.FromMilliseconds(1), ct)
                ?? throw new TimeoutException($"{variant.Name}: query {id} got no result within 5 minutes");
            waits.Add((outcome.StartedAt - at).TotalMilliseconds);
            queries.Add((at, outcome));
        }

        var probes = await probe.StopAsync();
        var probed = probes.Select(p => p.Ms).ToList();
        var generateInWindow = listener.All.Count(r => r.Lane == "generate" && r.StartedAt >= windowStart && r.StartedAt <= windowEnd);
        var generatePerSecond = generateInWindow / (windowEnd - windowStart).TotalSeconds;
        string config;
        if (laneQueue)
        {
            config = variant.Kind switch
            {
                Kind.PriorityQueue => $"x-max-priority 4 queue, prefetch = slot budget {SlotBudget}",
                Kind.QueuePerLaneEqualCapacity => "slot budget 1, generate concurrency 1, query concurrency 4, gate check 25 ms (default)",
                Kind.QueuePerLaneReservedQuery => "slot budget 2, ReservedSlots:Query=1, generate concurrency 1, query concurrency 4, gate check 25 ms (default)",
                _ => $"slot budget {SlotBudget}, generate concurrency {SlotBudget}, gate check 25 ms (default)",
            };
        }
        else
        {
            var ready = fleet.Processes[0].Lines(l => l.StartsWith("ready", StringComparison.Ordinal)).FirstOrDefault().Line ?? "";
            var prefetch = Word(ready, "prefetch=") ?? "?";
            var maxConcurrent = fleet.Processes
                .Select(p => Word(p.Lines(l => l.StartsWith("stats", StringComparison.Ordinal)).LastOrDefault().Line ?? "", "max_concurrent="))
                .Max();
            var limit = variant.Kind == Kind.XMaxPriorityLimited ? $"ConcurrentMessageLimit {SlotBudget}" : "concurrency limit not set";
            config = $"{(priority ? "EnablePriority(4), " : "")}prefetch {prefetch}, {limit} " +
                     $"(observed {maxConcurrent} running at once per process)";
        }
        if (backlogAtEnd == 0)
            BenchContext.Log($"    warning: {variant.Name}: the backlog ran out during the window");

        var row = new Dictionary<string, object?>
        {
            ["key"] = variant.Key,
            ["variant"] = variant.Name,
            ["config"] = config,
            ["backlog_published_s"] = Stats.Round(publishSeconds, 2),
            ["backlog_at_first_query"] = backlogAtStart,
            ["backlog_at_last_query"] = backlogAtEnd,
            ["generate_per_s"] = Stats.Round(generatePerSecond, 0),
            ["samples"] = waits.Count,
            ["p50_ms"] = Stats.Round(Stats.Percentile(waits, 50)),
            ["p99_ms"] = Stats.Round(Stats.Percentile(waits, 99)),
            ["max_ms"] = Stats.Round(waits.Max()),
            ["probe_ms"] = probed.Count == 0 ? "none arrived"
                : $"{Tables.Format(Stats.Round(Stats.Percentile(probed, 50)))} / {Tables.Format(Stats.Round(Stats.Percentile(probed, 99)))} / {Tables.Format(Stats.Round(probed.Max()))}",
        };
        BenchContext.Log($"    p50 {row["p50_ms"]} ms, p99 {row["p99_ms"]} ms, max {row["max_ms"]} ms; backlog {backlogAtStart} -> {backlogAtEnd}; generate {row["generate_per_s"]}/s; broker probe p50 / p99 / max {row["probe_ms"]} ms");
        return (row, waits.Select(w => Stats.Round(w, 2)).ToList(), new QueryRun(queries, listener.All.ToList(), probes));
    }

    /// <summary>
    /// LANEQUEUE_BENCH_TIMELINE=DIR (a diagnosis aid): each variant's task runs, query publishes and broker probes, one per line, in
    /// DIR/timeline-KEY.txt, to see where a long wait went (which process ran what, when).
    /// </summary>
    static void WriteTimeline(string key, QueryRun run)
    {
        if (Environment.GetEnvironmentVariable("LANEQUEUE_BENCH_TIMELINE") is not { Length: > 0 } dir)
            return;
        Directory.CreateDirectory(dir);
        var file = Path.Combine(dir, $"timeline-{key}.txt");
        File.WriteAllLines(file, run.All.OrderBy(r => r.StartedAt).Select(r => $"run {r.Id} {r.Lane} {r.Consumer} {r.StartedAt:O} {r.FinishedAt:O}")
            .Concat(run.Queries.Select(q => $"publish {q.Query.Id} {q.At:O}"))
            .Concat(run.Probes.Select(p => $"probe {p.At:O} {p.Ms.ToString("0.00", System.Globalization.CultureInfo.InvariantCulture)}")));
        BenchContext.Log($"    timeline: {file}");
    }

    sealed record QueryRun(List<(DateTimeOffset At, TaskOutcome Query)> Queries, List<TaskOutcome> All, IReadOnlyList<(DateTimeOffset At, double Ms)> Probes);

    /// <summary>
    /// The equal-capacity row's floors, from the same run: for each query, from its publish to the first task to finish (a slot
    /// given back) anywhere in the fleet once the query could be there, <paramref name="delivery"/> after its publish (the
    /// reserved-slot row's p50: publish, confirm, delivery and start of a query that finds a slot free). That is the best any
    /// scheduler could do with this broker and these generate runs; the same to the first slot given back on the process that
    /// ran the query is what a query waits when it stays where the broker delivered it.
    /// </summary>
    static void AddFloors(Dictionary<string, object?> row, QueryRun run, double delivery)
    {
        var fleet = new List<double>();
        var own = new List<double>();
        var handOff = new List<double>();
        foreach (var (at, query) in run.Queries)
        {
            var from = at + TimeSpan.FromMilliseconds(delivery);
            // A slot given back before the query could be there went to a generate task; none in the window: the query found one.
            var frees = run.All.Where(r => r.Id != query.Id && r.FinishedAt >= from && r.FinishedAt <= query.StartedAt).ToList();
            double After(IEnumerable<TaskOutcome> finishes, double none) =>
                finishes.Select(r => (r.FinishedAt - at).TotalMilliseconds).DefaultIfEmpty(none).Min();
            // None on its own process: it found its slot free. None on the others before it started: they were no sooner.
            var ownFree = After(frees.Where(r => r.Consumer == query.Consumer), delivery);
            var otherFree = After(frees.Where(r => r.Consumer != query.Consumer), double.PositiveInfinity);
            fleet.Add(Math.Min(ownFree, otherFree));
            own.Add(ownFree);
            // A fleet-wide hand-off (not built): the query moves to another process when that one gives a slot back first,
            // at the cost of one more trip through the broker (taken as the reserved row's p50, a publish to a start).
            handOff.Add(ownFree <= otherFree + delivery ? ownFree : otherFree + delivery);
        }
        row["floor_delivery_ms"] = Stats.Round(delivery);
        row["fleet_first_free_p50_ms"] = Stats.Round(Stats.Percentile(fleet, 50));
        row["fleet_first_free_max_ms"] = Stats.Round(fleet.Max());
        row["own_first_free_p50_ms"] = Stats.Round(Stats.Percentile(own, 50));
        row["own_first_free_max_ms"] = Stats.Round(own.Max());
        row["hand_off_p50_ms"] = Stats.Round(Stats.Percentile(handOff, 50));
        row["hand_off_max_ms"] = Stats.Round(handOff.Max());
        row["hand_off_ms"] = $"{Tables.Format(row["hand_off_p50_ms"])} / {Tables.Format(row["hand_off_max_ms"])}";
        row["fleet_first_free_ms"] = $"{Tables.Format(row["fleet_first_free_p50_ms"])} / {Tables.Format(row["fleet_first_free_max_ms"])}";
        row["own_first_free_ms"] = $"{Tables.Format(row["own_first_free_p50_ms"])} / {Tables.Format(row["own_first_free_max_ms"])}";
        BenchContext.Log($"  {row["variant"]}: first slot given back {delivery:0.0} ms or more after the publish (p50 / max): in the fleet " +
                         $"{row["fleet_first_free_ms"]} ms, on the process that ran the query {row["own_first_free_ms"]} ms, with a hand-off costing {delivery:0.0} ms {row["hand_off_ms"]} ms; " +
                         $"measured {row["p50_ms"]} / {row["max_ms"]} ms");
    }

}
