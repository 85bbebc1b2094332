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
/// time (finished_at - started_at, summed) / (that wall time x the fleet's slots), and the same run time over the slot time a
/// waiting task could have used (<see cref="UsableSlotTime"/>: what lane order and the lane limits allow). Variants: the gate as shipped
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
            new("usable_utilization_pct", "of usable slot time", "%"),
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
        // The title's claim, "no slot idle while a lane it may run has work": of the slot time some waiting task could have
        // used (see UsableSlotTime), the share handlers used. Unlike the plain utilization it is not bounded by the lane limits,
        // so it holds every variant to the same 75 %; the Strict row (control, reported) idles usable slots and shows it.
        foreach (var row in new[] { off, on })
        {
            var usable = (double)row["usable_utilization"]!;
            result.Verdicts.Add(new Verdict($"{((string)row["key"]! == "gate-off" ? "gate off" : "gate on")}: handlers use >= {want:0.##} " +
                                            $"of the slot time a waiting task could use{settings.TargetKind}", usable >= want,
                $"{usable:0.00} ({row["idle_usable_slot_s"]} slot-s idle while a lane with room had work)"));
        }
        BenchContext.Log($"  [info, no verdict] Strict mode: handlers used {(double)strict["usable_utilization"]!:0.00} of the usable slot time " +
                         $"({strict["idle_usable_slot_s"]} slot-s idle while a lane with room had work)");
        result.Notes.Add($"Summary: gate on {onRate:0} tasks/s, gate off {offRate:0} tasks/s, ratio {ratio:0.00}x; Strict mode (the rule " +
                         $"before 1.0, control, no verdict) {strictRate:0} tasks/s, {strictRatio:0.00}x; slot utilization gate off " +
                         $"{offUtilization:0.00}, gate on {onUtilization:0.00}, Strict {strictUtilization:0.00}; of the usable slot time gate off " +
                         $"{off["usable_utilization"]}, gate on {on["usable_utilization"]}, Strict {strict["usable_utilization"]}.");
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
        result.Notes.Add("Usable slot time (the title's \"no slot idle while a lane it may run has work\"): swept over every store (publish " +
                         "confirmed), start and finish, a process's idle slots count as usable while some lane has a stored task not yet started " +
                         "anywhere and room under its limit on that process (min of the free slots and that room, limits 2/4/2/1). Handlers' time / " +
                         "(handlers' time + that idle time). A slot only a lane at its limit could fill (generate alone at the end) does not count; " +
                         "one idle while a lane with room had work held by the other process, at the broker or behind a gate does.");
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
        // When each task was stored (its publish confirmed): from then on it is work waiting for a slot.
        var stored = new System.Collections.Concurrent.ConcurrentDictionary<string, DateTimeOffset>();
        await Submit.ManyAsync(n, async i =>
        {
            await producer.SubmitTaskAsync(Submit.Sleep($"f-{i}", lanes[i % lanes.Count], settings.GenerateMs), ct);
            stored[$"f-{i}"] = DateTimeOffset.UtcNow;
        }, ct);
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
        var (usable, idleUsable) = UsableSlotTime(all, stored, laneNames);
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
        BenchContext.Log($"    {perSecond:0} tasks/s over {wall:0.00} s; utilization {utilization:0.00} (nominal {nominal:0.00}, " +
                         $"of usable slot time {usable:0.00}, {idleUsable:0.00} slot-s idle while a lane could start); " +
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
            ["usable_utilization"] = Stats.Round(usable, 3),
            ["usable_utilization_pct"] = Stats.Round(100 * usable, 0),
            ["idle_usable_slot_s"] = Stats.Round(idleUsable, 2),
            ["handler_ms_mean"] = Stats.Round(1000 * busy / n, 1),
            ["overtakes"] = overtakes,
            ["lanes_done_s"] = string.Join(" / ", lanesDone.Select(d => d.ToString("0.0", CultureInfo.InvariantCulture))),
            ["processes_seen"] = all.Select(r => r.Consumer).Distinct().Count(),
        };
    }

    static DateTimeOffset Max(DateTimeOffset a, DateTimeOffset b) => a > b ? a : b;

    /// <summary>The default lane limits (appsettings.json), control first: what a process may run of each lane at once.</summary>
    static readonly int[] LaneLimits = [2, 4, 2, 1];

    /// <summary>
    /// The issue's title as a number: how much of the slot time some waiting task could have used was used. Swept over every
    /// start, finish and store: at each moment a process's idle slots that a lane could take are
    /// min(free slots, sum over the lanes with a stored, not yet started task of the room under that lane's limit on that
    /// process). Returns handler time / (handler time + that idle time summed), and the idle time in slot-seconds.
    /// A slot that only a lane at its limit could fill (e.g. the end of the run, generate alone with its limit of 1) is not
    /// counted; a slot left idle while a lane with room had work anywhere in the fleet (held by the other process, still at
    /// the broker, or held back by a gate) is.
    /// </summary>
    static (double Utilization, double IdleSlotSeconds) UsableSlotTime(IReadOnlyList<TaskOutcome> all,
        IReadOnlyDictionary<string, DateTimeOffset> stored, IReadOnlyList<string> laneNames)
    {
        var laneIndex = laneNames.Select((name, i) => (name, i)).ToDictionary(p => p.name, p => p.i);
        var processes = all.Select(r => r.Consumer ?? "").Distinct().ToList();
        while (processes.Count < FleetSize)
            processes.Add($"(idle process {processes.Count + 1})");
        var processIndex = processes.Select((p, i) => (p, i)).ToDictionary(p => p.p, p => p.i);
        // (time, process or -1 for the fleet-wide waiting count, lane, delta)
        var events = new List<(DateTimeOffset At, int Process, int Lane, int Delta)>(all.Count * 4);
        foreach (var r in all)
        {
            var lane = laneIndex[r.Lane];
            var process = processIndex[r.Consumer ?? ""];
            var storedAt = stored.TryGetValue(r.Id, out var at) && at < r.StartedAt ? at : r.StartedAt;
            events.Add((storedAt, -1, lane, +1));
            events.Add((r.StartedAt, -1, lane, -1));
            events.Add((r.StartedAt, process, lane, +1));
            events.Add((r.FinishedAt, process, lane, -1));
        }
        // At equal times a finish/start is applied before the idle time after it is counted, so order within a time does not matter.
        events.Sort((a, b) => a.At.CompareTo(b.At));
        var first = all.Min(r => r.StartedAt);
        var waiting = new int[LaneLimits.Length];
        var running = new int[processes.Count, LaneLimits.Length];
        double idle = 0;
        for (var i = 0; i < events.Count; i++)
        {
            var e = events[i];
            if (e.Process < 0)
                waiting[e.Lane] += e.Delta;
            else
                running[e.Process, e.Lane] += e.Delta;
            if (i + 1 == events.Count || events[i + 1].At == e.At || events[i + 1].At <= first)
                continue;
            var from = e.At < first ? first : e.At;
            var seconds = (events[i + 1].At - from).TotalSeconds;
            for (var p = 0; p < processes.Count; p++)
            {
                var busy = 0;
                var room = 0;
                for (var l = 0; l < LaneLimits.Length; l++)
                {
                    busy += running[p, l];
                    if (waiting[l] > 0)
                        room += Math.Max(0, LaneLimits[l] - running[p, l]);
                }
                idle += Math.Max(0, Math.Min(SlotBudget - busy, room)) * seconds;
            }
        }
        var handlers = all.Sum(r => (r.FinishedAt - r.StartedAt).TotalSeconds);
        return (handlers / (handlers + idle), idle);
    }
}
