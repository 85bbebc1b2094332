using LaneQueue.Bench.Infra;
using LaneQueue.Contracts;
using LaneQueue.Producer;

namespace LaneQueue.Bench.Scenarios;

/// <summary>
/// 6. Aging: a continuous query flood (more query work than the fleet can run, topped up all the time) keeps the gate
/// holding generate; generate probes are submitted one after the other and their wait (submit → start) is compared
/// with the boost deadline. The control variant has the boost disabled: the probe waits for as long as the flood lasts.
/// </summary>
public static class Aging
{
    sealed record Variant(string Key, string Name, string[] Args, bool Boost);

    const int FleetSize = 2;
    const int FloodTaskMs = 100;

    public static async Task RunAsync(BenchContext context, ScenarioResult result)
    {
        var deadline = context.Settings.AgingDeadlineMs;
        Variant[] variants =
        [
            new("standard", $"LaneQueue, boost Standard, deadline {deadline} ms", [$"--LaneQueue:Queue:PriorityBoost:DeadlineMs={deadline}"], true),
            new("disabled", "LaneQueue, boost Disabled (control)", ["--LaneQueue:Queue:PriorityBoost:Strategy=Disabled"], false),
        ];
        result.Columns.AddRange(
        [
            new("variant", "variant"),
            new("deadline_ms", "deadline", "ms"),
            new("held_before_ms", "generate held before 1st probe", "ms"),
            new("waits", "generate probe waits", "ms"),
            new("max_wait_ms", "max wait", "ms"),
            new("flood_held", "flood still waiting at each start"),
        ]);
        foreach (var variant in variants)
        {
            BenchContext.Log($"  aging: {variant.Name}");
            var (row, waits) = await MeasureAsync(context, variant);
            result.Rows.Add(row);
            result.Samples[variant.Name] = waits;
            var max = (double)row["max_wait_ms"]!;
            if (row["gate_held"] is false)
            {
                // No gate (e.g. LaneQueue__Gate__Enabled=false): nothing holds generate, so there is nothing to age.
                result.Verdicts.Add(new Verdict($"{variant.Name}: the query flood backs up at the broker", false,
                    "the query lane had no ready message within 15 s of the flood: nothing to age against"));
                continue;
            }
            if (variant.Boost)
            {
                // Strict (full run): within the deadline; relaxed (--quick, CI): within 1.5 x the deadline.
                var limit = context.Settings.Target(deadline, 1.5 * deadline);
                result.Verdicts.Add(new Verdict($"{variant.Name}: every generate probe starts within {(context.Settings.Quick ? "1.5 x " : "")}the boost deadline under the flood ({limit:0} ms){context.Settings.TargetKind}",
                    max <= limit, $"max wait {max:0} ms vs deadline {deadline} ms"));
            }
            else
            {
                // The control shows the flood really holds generate: without the boost the probe does not start within the deadline.
                result.Verdicts.Add(new Verdict($"{variant.Name}: the probe does not start within the deadline (the flood holds generate without aging)",
                    max > deadline, double.IsNaN(max) ? "no probe" : $"waited {max:0} ms" + (((string)row["waits"]!).Contains("not started", StringComparison.Ordinal) ? ", not started" : "")));
            }
        }
        result.Notes.Add($"Fleet: {FleetSize} queue-per-lane consumer processes, default configuration (query concurrency 4, slot budget 4, " +
                         $"generate concurrency 1). Flood: query tasks of sleep {FloodTaskMs} ms, 300 at once then 100/s for the whole " +
                         $"measurement (the fleet runs at most {FleetSize * 4 * 1000 / FloodTaskMs}/s), so the query lane always has ready messages. " +
                         "Probes: generate echo tasks, the first once the flood has backed up at the broker, each next one as soon as the " +
                         "previous started. The control's probe is given twice the deadline. Since 1.0 the aging clock runs from a probe's " +
                         "arrival at a consumer (or generate's last start there), so 'held before 1st probe' is 0.");
        result.Notes.Add("Standard aging lifts a waiting lane 1 level at 75 % of the deadline left, 2 levels (level with query: query still " +
                         "goes first) at 50 % and 3 levels (above query) at 25 %, so a probe is expected to start at about three quarters of the " +
                         "deadline, at the next free slot.");
        result.Notes.Add("Later probes often start much sooner: each consumer's gate ages on its own, and a consumer whose boost admitted " +
                         "generate keeps the lane open until it starts a generate task or its next check sees the lane empty and holds it " +
                         "again; a probe submitted right after the previous one started can land in that still-open lane.");
    }

    static async Task<(Dictionary<string, object?> Row, List<double> Waits)> MeasureAsync(BenchContext context, Variant variant)
    {
        var settings = context.Settings;
        var ct = context.Token;
        var deadline = settings.AgingDeadlineMs;
        await using var vhost = await context.Broker.CreateVhostAsync("aging", ct);
        await using var listener = await ResultListener.StartAsync(vhost.Url, ct);
        using var fleet = await context.StartLaneQueueFleetAsync(vhost, FleetSize, variant.Args, priorityTopology: false, "aging");
        await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = vhost.Url }, ct);

        var floodCount = 0;
        await Submit.ManyAsync(300, i => producer.SubmitTaskAsync(Submit.Sleep($"flood-{Interlocked.Increment(ref floodCount)}", SessionLane.Query, FloodTaskMs), ct), ct);
        using var stopFlood = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var flood = Task.Run(async () =>
        {
            try
            {
                while (!stopFlood.IsCancellationRequested)
                {
                    await Task.Delay(100, stopFlood.Token);
                    await Task.WhenAll(Enumerable.Range(0, 10).Select(_ =>
                        producer.SubmitTaskAsync(Submit.Sleep($"flood-{Interlocked.Increment(ref floodCount)}", SessionLane.Query, FloodTaskMs), stopFlood.Token)));
                }
            }
            catch (OperationCanceledException) when (stopFlood.IsCancellationRequested)
            {
            }
        }, ct);

        var waits = new List<double>();
        var held = new List<bool>();
        var heldBefore = double.NaN;
        var gateHeld = true;
        try
        {
            // The flood must back up at the broker (query always has ready work), so every slot keeps going to query.
            var backedUp = false;
            for (var wait = System.Diagnostics.Stopwatch.StartNew(); !backedUp && wait.Elapsed < TimeSpan.FromSeconds(15);)
            {
                backedUp = ((await vhost.QueueAsync(BrokerNames.LaneQueue(SessionLane.Query), ct))?.Ready ?? 0) > 0;
                if (!backedUp)
                    await Task.Delay(100, ct);
            }
            if (!backedUp)
            {
                gateHeld = false;
                BenchContext.Log("    the query flood did not back up at the broker within 15 s: no probes");
                return (new Dictionary<string, object?>
                {
                    ["key"] = variant.Key,
                    ["variant"] = variant.Name,
                    ["deadline_ms"] = deadline,
                    ["waits"] = "not measured: the flood never backed up",
                    ["max_wait_ms"] = double.NaN,
                    ["gate_held"] = false,
                }, waits);
            }
            // Since 1.0 the aging clock runs from the probe's arrival at a consumer (or the lane's last start there).
            heldBefore = 0;

            var probes = variant.Boost ? settings.AgingProbes : 1;
            var timeout = TimeSpan.FromMilliseconds(variant.Boost ? deadline * 2 + 3000 : deadline * 2);
            for (var k = 0; k < probes; k++)
            {
                var id = $"probe-{k}";
                var at = DateTimeOffset.UtcNow;
                await producer.SubmitTaskAsync(Submit.Echo(id, SessionLane.Generate), ct);
                var outcome = await listener.WaitForAsync(id, timeout, ct);
                var queryReady = (await vhost.QueueAsync(BrokerNames.LaneQueue(SessionLane.Query), ct))?.Ready ?? 0;
                held.Add(queryReady > 0);
                if (outcome is null)
                {
                    waits.Add(timeout.TotalMilliseconds);
                    BenchContext.Log($"    probe {k + 1}: not started within {timeout.TotalMilliseconds:0} ms ({queryReady} queries waiting)");
                    break;
                }
                waits.Add((outcome.StartedAt - at).TotalMilliseconds);
                BenchContext.Log($"    probe {k + 1}: started after {waits[^1]:0} ms ({queryReady} queries still waiting)");
            }
        }
        finally
        {
            await stopFlood.CancelAsync();
            await flood.WaitAsync(TimeSpan.FromSeconds(10), CancellationToken.None).ContinueWith(_ => { }, TaskScheduler.Default);
        }

        var startedAll = variant.Boost || waits.Count == 0 || waits[^1] < (double)(deadline * 2);
        var row = new Dictionary<string, object?>
        {
            ["key"] = variant.Key,
            ["variant"] = variant.Name,
            ["deadline_ms"] = deadline,
            ["held_before_ms"] = Stats.Round(heldBefore, 0),
            ["waits"] = string.Join(", ", waits.Select(w => w.ToString("0", System.Globalization.CultureInfo.InvariantCulture))) +
                        (startedAll ? "" : " (not started: still waiting when the bench gave up)"),
            ["waits_ms"] = waits.Select(w => Stats.Round(w)).ToList(),
            ["max_wait_ms"] = Stats.Round(waits.DefaultIfEmpty(double.NaN).Max()),
            ["flood_held"] = held.All(h => h),
            ["gate_held"] = gateHeld,
            ["flood_tasks_submitted"] = floodCount,
        };
        return (row, waits);
    }
}
