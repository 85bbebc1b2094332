using System.Globalization;
using LaneQueue.Bench.Infra;
using LaneQueue.Bench.Report;
using LaneQueue.Contracts;
using LaneQueue.Producer;

namespace LaneQueue.Bench.Scenarios;

/// <summary>
/// 8. Four-lane flood: what the gate costs in throughput. A queue-per-lane fleet of 2 with the default configuration (slot
/// budget 4, lane limits 2/4/2/1) gets a backlog of sleep 20 ms tasks spread evenly over the four lanes, all submitted at
/// once. Measured from the results: tasks/s from the first start to the last completion, and slot utilization = handler run
/// time (finished_at - started_at, summed) / (that wall time x the fleet's slots). Variants: the gate as shipped
/// (<see cref="LaneQueue.Consumer.GateMode.WorkConserving"/>: a free slot is held for a higher lane's ready work only while
/// this process could start it), no gate (<c>--LaneQueue:Gate:Enabled=false</c>: only the slot budget's lane order), and the
/// rule before 1.0 as a control (<c>--LaneQueue:Gate:Mode=Strict</c>: every lower lane waits while a higher lane has ready
/// work, even work this process cannot start), which idles slots under this flood: the row shows what the old rule cost.
/// </summary>
public static class Flood4
{
    sealed record Variant(string Key, string Name, string[] Args);

    static readonly Variant[] Variants =
    [
        new("gate-on", "gate on (default)", []),
        new("gate-off", "gate off (slot budget only)", ["--LaneQueue:Gate:Enabled=false"]),
        new("gate-strict", "gate on, Strict mode (the rule before 1.0; control)", ["--LaneQueue:Gate:Mode=Strict"]),
    ];

    const int FleetSize = 2;
    const int SlotBudget = 4; // the default (appsettings.json); the consumers run with the defaults, this is for the arithmetic

    public static async Task RunAsync(BenchContext context, ScenarioResult result)
    {
        var settings = context.Settings;
        result.Columns.AddRange(
        [
            new("variant", "variant"),
            new("tasks", "tasks"),
            new("wall_s", "first start → last completion", "s"),
            new("tasks_per_s", "throughput", "tasks/s"),
            new("rounds_per_s", "all rounds", "tasks/s"),
            new("vs_gate_off", "vs gate off", "x"),
            new("utilization_pct", "slot utilization", "%"),
            new("overtakes", "order overtakes"),
            new("lanes_done_s", "lane done c / q / e / g", "s"),
        ]);
        // Rounds go through the variants in turn (a shared machine's load falls on all alike); the best round is shown.
        var rounds = settings.Quick ? 1 : 2;
        var measured = Variants.ToDictionary(v => v.Key, _ => new List<Dictionary<string, object?>>());
        for (var round = 1; round <= rounds; round++)
        {
            foreach (var variant in Variants)
            {
                BenchContext.Log($"  flood4 round {round}: {variant.Name}");
                measured[variant.Key].Add(await MeasureAsync(context, variant));
            }
        }
        foreach (var variant in Variants)
        {
            var best = measured[variant.Key].MaxBy(r => (double)r["tasks_per_s"]!)!;
            best["rounds_per_s"] = string.Join(" / ", measured[variant.Key].Select(r => Tables.Format(r["tasks_per_s"])));
            result.Rows.Add(best);
        }

        var on = result.Rows.Single(r => (string)r["key"]! == "gate-on");
        var off = result.Rows.Single(r => (string)r["key"]! == "gate-off");
        var onRate = (double)on["tasks_per_s"]!;
        var offRate = (double)off["tasks_per_s"]!;
        var ratio = onRate / offRate;
        var offUtilization = (double)off["utilization"]!;
        var onUtilization = (double)on["utilization"]!;
        var strict = result.Rows.Single(r => (string)r["key"]! == "gate-strict");
        var strictRate = (double)strict["tasks_per_s"]!;
        var strictRatio = strictRate / offRate;
        var strictUtilization = (double)strict["utilization"]!;
        on["vs_gate_off"] = Stats.Round(ratio, 2);
        off["vs_gate_off"] = 1.0;
        strict["vs_gate_off"] = Stats.Round(strictRatio, 2);

        // Strict (full run, the issue's targets): the gate keeps >= 0.9x of the throughput without it, and without the gate the
        // fleet keeps >= 75 % of its slots busy. Relaxed (--quick, CI): the gate keeps >= 0.75x (the work-conserving scheduler
        // measured 0.98x and 0.93x in two quick runs on the shared 2-core machine; the rule before 1.0, the Strict row, 0.66x and
        // 0.68x in the same runs, so a gate that idles slots as the old rule did misses it, though not by much), and utilization >= 0.35, which a much slower task path or a stalled lane misses (with strict lane order and
        // the default lane limits even a perfect schedule of this backlog keeps at most about 67 % of the slots busy, see the note
        // below; the consumer this was written against measured 0.55 and, on a 2-core machine at load average ~10, 0.44 in --quick).
        var wantRatio = settings.Target(0.9, 0.75);
        result.Verdicts.Add(new Verdict($"gate on: throughput >= {wantRatio:0.0#}x gate off's{settings.TargetKind}", ratio >= wantRatio,
            $"{onRate:0} / {offRate:0} tasks/s = {ratio:0.00}x"));
        // The Strict control is reported, never checked: it shows what the rule before 1.0 costs under this flood.
        BenchContext.Log($"  [info, no verdict] Strict mode (the rule before 1.0): {strictRatio:0.00}x gate off's ({strictRate:0} / {offRate:0} tasks/s), utilization {strictUtilization:0.00}");
        var want = settings.Target(0.75, 0.35);
        result.Verdicts.Add(new Verdict($"gate off: slot utilization >= {want:0.##}{settings.TargetKind}", offUtilization >= want,
            $"{offUtilization:0.00} ({off["tasks"]} tasks, {off["wall_s"]} s, {FleetSize} x {SlotBudget} slots)"));
        result.Notes.Add($"Summary: gate on {onRate:0} tasks/s, gate off {offRate:0} tasks/s, ratio {ratio:0.00}x; Strict mode (the rule " +
                         $"before 1.0, control, no verdict) {strictRate:0} tasks/s, {strictRatio:0.00}x; slot utilization gate off " +
                         $"{offUtilization:0.00}, gate on {onUtilization:0.00}, Strict {strictUtilization:0.00}.");
        result.Notes.Add($"Fleet: {FleetSize} queue-per-lane consumer processes, default configuration (slot budget {SlotBudget}, lane limits " +
                         $"control/query/execute/generate 2/4/2/1, gate check 25 ms). Backlog: {settings.Flood4Tasks} tasks of sleep " +
                         $"{settings.GenerateMs} ms, a quarter on each lane (interleaved), published (confirmed, at most 256 in flight) once " +
                         "every consumer is up; publishing is far faster than the fleet, so it works on a backlog in all four lanes. " +
                         $"{rounds} round(s) per variant, alternating, best shown.");
        result.Notes.Add("Throughput = tasks / (last finished_at - first started_at), from the results. Slot utilization = the handlers' " +
                         $"run time (finished_at - started_at of every task, summed) / (that wall time x {FleetSize * SlotBudget} slots); the row's " +
                         $"JSON also has the nominal one (tasks x {settings.GenerateMs} ms). Order overtakes: tasks that started before the " +
                         "last start of a higher lane (every task is submitted up front, so such a task ran while higher-lane work waited; " +
                         "gate off, the slot budget's order alone, has many). Lane done: when each lane's last task finished, in s after the first start.");
        result.Notes.Add("A bound to read the utilization against, per process (slot budget 4, limits 2/4/2/1, a quarter of the work on each lane): " +
                         "in lane order control and query fill all 4 slots until they are done (T), then execute and generate use 3 (to 2T), then " +
                         "generate's other half runs alone on 1 (to 3T): even a perfect schedule keeps (4 + 3 + 1) / (3 x 4) = about 67 % of the " +
                         "slots busy. Above that, generate must start while a higher lane still has work it could start, which lane order forbids.");
    }

    static async Task<Dictionary<string, object?>> MeasureAsync(BenchContext context, Variant variant)
    {
        var settings = context.Settings;
        var ct = context.Token;
        var n = settings.Flood4Tasks;
        await using var vhost = await context.Broker.CreateVhostAsync("flood4", ct);
        await using var listener = await ResultListener.StartAsync(vhost.Url, ct);
        using var fleet = await context.StartLaneQueueFleetAsync(vhost, FleetSize, variant.Args, priorityTopology: false, "flood4");
        await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = vhost.Url }, ct);
        var lanes = SessionLanes.All;
        await Submit.ManyAsync(n, i => producer.SubmitTaskAsync(Submit.Sleep($"f-{i}", lanes[i % lanes.Count], settings.GenerateMs), ct), ct);
        // Even gate on at a third of the fleet's 400 tasks/s finishes well within this.
        var timeout = TimeSpan.FromSeconds(30 + n / 25.0);
        if (!await ResultListener.UntilAsync(() => listener.Count >= n, timeout, ct, pollMs: 20))
            throw new TimeoutException($"{variant.Name}: {listener.Count} of {n} tasks completed in {timeout.TotalSeconds:0} s");

        var all = listener.All.ToList();
        var first = all.Min(r => r.StartedAt);
        var last = all.Max(r => r.FinishedAt);
        var wall = (last - first).TotalSeconds;
        var busy = all.Sum(r => (r.FinishedAt - r.StartedAt).TotalSeconds);
        var slots = FleetSize * SlotBudget;
        var utilization = busy / (wall * slots);
        var nominal = n * settings.GenerateMs / 1000.0 / (wall * slots);
        var perSecond = n / wall;

        // Overtakes: a task that started before the last start of any higher lane (all were submitted up front).
        var laneNames = lanes.Select(l => l.ToString().ToLowerInvariant()).ToList();
        var byLane = laneNames.ToDictionary(l => l, l => all.Where(r => r.Lane == l).ToList());
        var overtakes = 0;
        var higherLastStart = DateTimeOffset.MinValue;
        foreach (var lane in laneNames)
        {
            overtakes += byLane[lane].Count(r => r.StartedAt < higherLastStart);
            if (byLane[lane].Count > 0)
                higherLastStart = Max(higherLastStart, byLane[lane].Max(r => r.StartedAt));
        }
        var lanesDone = laneNames.Select(l => byLane[l].Count == 0 ? double.NaN : (byLane[l].Max(r => r.FinishedAt) - first).TotalSeconds).ToList();
        var failed = all.Count(r => !r.Success);
        BenchContext.Log($"    {perSecond:0} tasks/s over {wall:0.00} s; utilization {utilization:0.00} (nominal {nominal:0.00}); " +
                         $"{overtakes} overtakes; lanes done at {string.Join(" / ", lanesDone.Select(d => d.ToString("0.0", CultureInfo.InvariantCulture)))} s" +
                         (failed > 0 ? $"; {failed} failed" : ""));
        return new Dictionary<string, object?>
        {
            ["key"] = variant.Key,
            ["variant"] = variant.Name,
            ["tasks"] = n,
            ["failed"] = failed,
            ["wall_s"] = Stats.Round(wall, 2),
            ["tasks_per_s"] = Stats.Round(perSecond, 0),
            ["utilization"] = Stats.Round(utilization, 3),
            ["utilization_pct"] = Stats.Round(100 * utilization, 0),
            ["utilization_nominal"] = Stats.Round(nominal, 3),
            ["handler_ms_mean"] = Stats.Round(1000 * busy / n, 1),
            ["overtakes"] = overtakes,
            ["lanes_done_s"] = string.Join(" / ", lanesDone.Select(d => d.ToString("0.0", CultureInfo.InvariantCulture))),
            ["processes_seen"] = all.Select(r => r.Consumer).Distinct().Count(),
        };
    }

    static DateTimeOffset Max(DateTimeOffset a, DateTimeOffset b) => a > b ? a : b;
}
