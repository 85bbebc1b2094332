using System.Globalization;
using LaneQueue.Bench.Infra;
using LaneQueue.Bench.Report;
using LaneQueue.Contracts;
using LaneQueue.Producer;

namespace LaneQueue.Bench.Scenarios;

/// <summary>
/// 10. Session fairness (issue 21): a queue-per-lane fleet of 2 (slot budget 4, generate max concurrency 4: 8 generate slots)
/// gets a backlog of sleep 20 ms generate tasks from session A; once A's tasks run (A's submit confirmed and 4 rounds of the
/// fleet's slots completed), session B submits 20 more. Measured from the results: B's wait (each task's started_at minus the
/// bench's clock just before it published that task), B's last start after B's submit began, how many of A's tasks started
/// between B's submit and B's last start, and the lane's throughput (every task / first start to last completion), next to
/// the same run without B. Variants: 8 session shards on generate (<c>--LaneQueue:SessionShards:Generate=8</c> on the
/// consumers, <see cref="ProducerOptions.SessionShards"/> on the producer: A's backlog waits in its shard, B's tasks in
/// another) and no shards (the feature off: B's tasks wait at the broker behind A's whole backlog), each with B and A only.
/// Only run when asked for (<c>--only fairness</c>).
/// </summary>
public static class Fairness
{
    sealed record Variant(string Key, string Name, int Shards, bool WithB);

    const int FleetSize = 2;
    const int SlotBudget = 4;
    const int FleetSlots = FleetSize * SlotBudget; // generate may take the whole budget
    const int Shards = 8;
    const int LateTasks = 20;
    const string SessionA = "session-a";
    const string SessionB = "session-b2"; // a shard other than A's among 8 (checked below)
    /// <summary>A's tasks completed before B submits: A runs on every slot by then (4 rounds of the fleet's slots).</summary>
    const int StartedBeforeB = 4 * FleetSlots;

    static readonly Variant[] Variants =
    [
        new("shards-b", $"{Shards} shards, A then B", Shards, true),
        new("shards-a", $"{Shards} shards, A only", Shards, false),
        new("none-b", "no shards, A then B", 0, true),
        new("none-a", "no shards, A only", 0, false),
    ];

    sealed record Measurement(Dictionary<string, object?> Row, List<double> BWaits, List<double> ABeforeEachB);

    public static async Task RunAsync(BenchContext context, ScenarioResult result)
    {
        var settings = context.Settings;
        result.Columns.AddRange(
        [
            new("variant", "variant"),
            new("tasks", "tasks"),
            new("a_waiting_at_b", "A ready at the broker at B's submit"),
            new("b_p50_ms", "B wait p50", "ms"),
            new("b_max_ms", "B wait max", "ms"),
            new("b_last_start_ms", "B's last start after B's submit", "ms"),
            new("a_during_b", "A starts from B's submit to B's last start"),
            new("a_during_b_rounds", "all rounds (A starts)"),
            new("tasks_per_s", "throughput", "tasks/s"),
            new("rounds_per_s", "all rounds", "tasks/s"),
            new("vs_a_only", "vs A only", "x"),
        ]);
        if (settings.Only is null)
        {
            // No gate for CI and ~2-3 minutes of 2-process runs: only when asked for (--only fairness), in a full or a quick run.
            result.Notes.Add("Not run without --only (it adds minutes and is not part of CI's quick run). Run it with " +
                             "`bash scripts/bench.sh --only fairness --out bench/results/fairness`.");
            return;
        }
        var shardA = SessionShards.Of(SessionA, Shards);
        var shardB = SessionShards.Of(SessionB, Shards);
        if (shardA == shardB)
            throw new InvalidOperationException($"{SessionA} and {SessionB} share shard {shardA} of {Shards}: B would wait behind A in one queue");

        var backlog = settings.FairnessBacklog;
        var rounds = settings.Quick ? 1 : 2;
        var measured = Variants.ToDictionary(v => v.Key, _ => new List<Measurement>());
        for (var round = 1; round <= rounds; round++)
        {
            foreach (var variant in Variants)
            {
                BenchContext.Log($"  fairness round {round}: {variant.Name}");
                var m = await MeasureAsync(context, variant, backlog);
                measured[variant.Key].Add(m);
                if (variant.WithB)
                {
                    result.Samples[$"{variant.Key}-r{round}-b-wait-ms"] = m.BWaits;
                    result.Samples[$"{variant.Key}-r{round}-a-before-each-b"] = m.ABeforeEachB;
                }
            }
        }

        // Per variant: B's numbers from the round where B fared worst (most A starts before B's last: fairness must hold in every
        // round, not in the best one); the throughput from the best round (noise on the shared machine only slows a run), as flood4.
        foreach (var variant in Variants)
        {
            var all = measured[variant.Key];
            var row = variant.WithB
                ? all.MaxBy(m => (int)m.Row["a_during_b"]!)!.Row
                : all[0].Row;
            var rates = all.Select(m => (double)m.Row["tasks_per_s"]!).ToList();
            row["tasks_per_s_this_round"] = row["tasks_per_s"]; // the round whose B numbers the row shows
            row["tasks_per_s"] = rates.Max();
            row["rounds_per_s"] = string.Join(" / ", rates.Select(r => Tables.Format(r)));
            if (variant.WithB)
                row["a_during_b_rounds"] = string.Join(" / ", all.Select(m => Tables.Format(m.Row["a_during_b"])));
            result.Rows.Add(row);
        }
        Dictionary<string, object?> Row(string key) => result.Rows.Single(r => (string)r["key"]! == key);
        foreach (var (withB, alone) in new[] { ("shards-b", "shards-a"), ("none-b", "none-a") })
        {
            Row(withB)["vs_a_only"] = Stats.Round((double)Row(withB)["tasks_per_s"]! / (double)Row(alone)["tasks_per_s"]!, 2);
            Row(alone)["vs_a_only"] = 1.0;
        }

        var sharded = Row("shards-b");
        var unsharded = Row("none-b");
        var aDuring = (int)sharded["a_during_b"]!;
        // Strict (full run, the issue's words): B's last start within 3 rounds of the fleet's slots worth of A starts beyond one A per
        // B task (20 + 3 x 8 = 44), and the lane's throughput with B >= 0.9x the same run without B. Relaxed (--quick --only
        // fairness): 6 rounds (68) and 0.75x.
        var roundsOfSlots = settings.Quick ? 6 : 3;
        var bound = LateTasks + roundsOfSlots * FleetSlots;
        result.Verdicts.Add(new Verdict(
            $"{Shards} shards: A starts from B's submit to B's last start <= {LateTasks} + {roundsOfSlots} x {FleetSlots} slots = {bound} (every round){settings.TargetKind}",
            measured["shards-b"].All(m => (int)m.Row["a_during_b"]! <= bound),
            $"{string.Join(" / ", measured["shards-b"].Select(m => m.Row["a_during_b"]))} A starts; B's last start {sharded["b_last_start_ms"]} ms after its submit " +
            $"(no shards: {unsharded["a_during_b"]} A starts, {unsharded["b_last_start_ms"]} ms)"));
        var ratio = (double)sharded["vs_a_only"]!;
        var want = settings.Target(0.9, 0.75);
        result.Verdicts.Add(new Verdict($"{Shards} shards: throughput with B >= {want:0.0#}x the same run without B{settings.TargetKind}", ratio >= want,
            $"{sharded["tasks_per_s"]} / {Row("shards-a")["tasks_per_s"]} tasks/s = {ratio:0.00}x"));
        BenchContext.Log($"  [info, no verdict] no shards: B's last start {unsharded["b_last_start_ms"]} ms after its submit, {unsharded["a_during_b"]} A starts before it; " +
                         $"throughput {unsharded["tasks_per_s"]} / {Row("none-a")["tasks_per_s"]} tasks/s A only; {Shards} shards A only vs no shards A only " +
                         $"{(double)Row("shards-a")["tasks_per_s"]! / (double)Row("none-a")["tasks_per_s"]!:0.00}x");

        result.Notes.Add($"Summary: with {Shards} shards B's {LateTasks} tasks waited p50 {sharded["b_p50_ms"]} ms, the last started {sharded["b_last_start_ms"]} ms " +
                         $"after B's submit, with {aDuring} of A's tasks started in between; without shards p50 {unsharded["b_p50_ms"]} ms, last " +
                         $"{unsharded["b_last_start_ms"]} ms, {unsharded["a_during_b"]} A starts (B waits behind A's backlog). Throughput with B / A only: " +
                         $"{Shards} shards {sharded["vs_a_only"]}x, no shards {unsharded["vs_a_only"]}x; {Shards} shards A only / no shards A only " +
                         $"{(double)Row("shards-a")["tasks_per_s"]! / (double)Row("none-a")["tasks_per_s"]!:0.00}x.");
        result.Notes.Add($"Fleet: {FleetSize} queue-per-lane consumer processes, --LaneQueue:SlotBudget={SlotBudget} " +
                         $"--LaneQueue:Queue:GenerateMaxConcurrency={SlotBudget} ({FleetSlots} generate slots in the fleet), built-in sleep handler; " +
                         $"with shards also --LaneQueue:SessionShards:Generate={Shards} and the producer's SessionShards[Generate] = {Shards}. " +
                         $"Session A ({SessionA}, shard {shardA}) submits {backlog} generate tasks of sleep {settings.GenerateMs} ms (confirmed, at most 256 " +
                         $"in flight); once that submit is confirmed and {StartedBeforeB} of A's tasks completed, session B ({SessionB}, shard {shardB}) " +
                         $"submits {LateTasks} more. Each variant in its own vhost; {rounds} round(s) through the variants in turn.");
        result.Notes.Add("B wait = its result's started_at - the bench's clock just before publishing it (includes publish + confirm); p50 nearest rank, " +
                         "max = the largest. B's last start: its last started_at - the bench's clock when B's submit began; A starts: A's tasks whose " +
                         "started_at falls between those two. Per round the JSON's samples list each B task's wait and the A tasks started before it. " +
                         "Rows with B show the round in which B fared worst (most A starts; the JSON's tasks_per_s_this_round is that round's throughput), " +
                         "the throughput column the best round (all rounds listed). " +
                         "Throughput = every task of the run (A's, and B's) / (last finished_at - first started_at); vs A only: / the A-only row with " +
                         $"the same shards. A ready at B's submit: ready messages in A's queue (with shards its shard " +
                         $"{SessionShards.Queue(SessionLane.Generate, shardA)}, without {BrokerNames.LaneQueue(SessionLane.Generate)}), not counting what the consumers hold.");
    }

    static async Task<Measurement> MeasureAsync(BenchContext context, Variant variant, int backlog)
    {
        var settings = context.Settings;
        var ct = context.Token;
        await using var vhost = await context.Broker.CreateVhostAsync("fair", ct);
        await using var listener = await ResultListener.StartAsync(vhost.Url, ct);
        List<string> args = [$"--LaneQueue:SlotBudget={SlotBudget}", $"--LaneQueue:Queue:GenerateMaxConcurrency={SlotBudget}"];
        if (variant.Shards > 0)
            args.Add($"--LaneQueue:SessionShards:Generate={variant.Shards}");
        using var fleet = await context.StartLaneQueueFleetAsync(vhost, FleetSize, args, priorityTopology: false, "fair");
        if (variant.Shards > 0)
        {
            // The fleet counts as up once the lanes' own queues have their consumers; with shards, every shard queue must have them too.
            var shardQueues = Enumerable.Range(0, variant.Shards).Select(s => SessionShards.Queue(SessionLane.Generate, s)).ToList();
            await vhost.WaitForConsumersAsync(shardQueues, FleetSize, TimeSpan.FromSeconds(60),
                () => fleet.Processes.FirstOrDefault(p => p.HasExited) is { } dead
                    ? $"{dead.Name} exited with code {dead.ExitCode} while starting:{Environment.NewLine}{dead.Tail()}"
                    : null, ct);
        }
        var options = new ProducerOptions { RabbitMqUrl = vhost.Url };
        if (variant.Shards > 0)
            options.SessionShards[SessionLane.Generate] = variant.Shards;
        await using var producer = await LaneQueueProducer.ConnectAsync(options, ct);
        ExternalTask MakeTask(string session, string id) => Submit.Sleep(id, SessionLane.Generate, settings.GenerateMs) with { SessionId = session };

        await Submit.ManyAsync(backlog, i => producer.SubmitTaskAsync(MakeTask(SessionA, $"a-{i}"), ct), ct);
        if (!await ResultListener.UntilAsync(() => listener.Count >= StartedBeforeB, TimeSpan.FromSeconds(30), ct))
            throw new TimeoutException($"{variant.Name}: {listener.Count} of A's tasks completed in 30 s (wanted {StartedBeforeB} before B's submit)");

        var aQueue = variant.Shards > 0
            ? SessionShards.Queue(SessionLane.Generate, SessionShards.Of(SessionA, variant.Shards))
            : BrokerNames.LaneQueue(SessionLane.Generate);
        uint? aReady = null;
        var bSubmit = DateTimeOffset.MinValue;
        var bPublished = new DateTimeOffset[LateTasks];
        if (variant.WithB)
        {
            aReady = (await vhost.QueueAsync(aQueue, ct))?.Ready;
            bSubmit = DateTimeOffset.UtcNow;
            await Submit.ManyAsync(LateTasks, i =>
            {
                bPublished[i] = DateTimeOffset.UtcNow;
                return producer.SubmitTaskAsync(MakeTask(SessionB, $"b-{i}"), ct);
            }, ct);
        }
        var total = backlog + (variant.WithB ? LateTasks : 0);
        // Even at a third of the fleet's 400 tasks/s this finishes well within the time-out.
        var timeout = TimeSpan.FromSeconds(30 + total / 25.0);
        if (!await ResultListener.UntilAsync(() => listener.Count >= total, timeout, ct, pollMs: 20))
            throw new TimeoutException($"{variant.Name}: {listener.Count} of {total} tasks completed in {timeout.TotalSeconds:0} s");

        var all = listener.All.ToList();
        var first = all.Min(r => r.StartedAt);
        var last = all.Max(r => r.FinishedAt);
        var wall = (last - first).TotalSeconds;
        var perSecond = total / wall;
        var failed = all.Count(r => !r.Success);
        var aStarts = all.Where(r => r.Id.StartsWith("a-", StringComparison.Ordinal)).Select(r => r.StartedAt).Order().ToList();
        var row = new Dictionary<string, object?>
        {
            ["key"] = variant.Key,
            ["variant"] = variant.Name,
            ["shards"] = variant.Shards,
            ["tasks"] = total,
            ["failed"] = failed,
            ["wall_s"] = Stats.Round(wall, 2),
            ["tasks_per_s"] = Stats.Round(perSecond, 0),
            ["processes_seen"] = all.Select(r => r.Consumer).Distinct().Count(),
        };
        var waits = new List<double>();
        var aBeforeEach = new List<double>();
        if (variant.WithB)
        {
            var bResults = Enumerable.Range(0, LateTasks).Select(i => all.Single(r => r.Id == $"b-{i}")).ToList();
            waits = bResults.Select((r, i) => Stats.Round((r.StartedAt - bPublished[i]).TotalMilliseconds, 2)).ToList();
            var bLast = bResults.Max(r => r.StartedAt);
            var aDuring = aStarts.Count(s => s > bSubmit && s < bLast);
            // For each B task in start order: A's tasks started after B's submit began and before it (the integration test's measure).
            aBeforeEach = bResults.Select(r => r.StartedAt).Order().Select(b => (double)aStarts.Count(s => s > bSubmit && s < b)).ToList();
            row["a_started_at_b"] = aStarts.Count(s => s <= bSubmit);
            row["a_waiting_at_b"] = aReady is { } ready ? (object)(int)ready : double.NaN;
            row["b_p50_ms"] = Stats.Round(Stats.Percentile(waits, 50));
            row["b_max_ms"] = Stats.Round(waits.Max());
            row["b_first_start_ms"] = Stats.Round((bResults.Min(r => r.StartedAt) - bSubmit).TotalMilliseconds);
            row["b_last_start_ms"] = Stats.Round((bLast - bSubmit).TotalMilliseconds);
            row["b_submit_ms"] = Stats.Round((bPublished.Max() - bSubmit).TotalMilliseconds);
            row["a_during_b"] = aDuring;
            BenchContext.Log($"    B: p50 {row["b_p50_ms"]} ms, max {row["b_max_ms"]} ms, last start {row["b_last_start_ms"]} ms after submit; " +
                             $"{aDuring} A starts in between (A ready at B's submit: {aReady}); {perSecond:0} tasks/s over {wall:0.00} s" +
                             (failed > 0 ? $"; {failed} failed" : ""));
        }
        else
        {
            row["a_waiting_at_b"] = double.NaN;
            row["b_p50_ms"] = row["b_max_ms"] = row["b_last_start_ms"] = double.NaN;
            row["a_during_b"] = double.NaN;
            BenchContext.Log($"    A only: {perSecond:0} tasks/s over {wall:0.00} s" + (failed > 0 ? $"; {failed} failed" : ""));
        }
        if (failed > 0)
            throw new InvalidOperationException($"{variant.Name}: {failed} of {total} tasks failed");
        return new Measurement(row, waits, aBeforeEach);
    }
}
