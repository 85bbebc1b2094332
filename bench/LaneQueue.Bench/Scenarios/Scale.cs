using LaneQueue.Bench.Infra;
using LaneQueue.Bench.Report;
using LaneQueue.Contracts;
using LaneQueue.Producer;

namespace LaneQueue.Bench.Scenarios;

/// <summary>
/// 4. Horizontal scale: 1, 2 and 4 consumer processes on one generate backlog with an I/O-bound handler
/// (sleep 20 ms). Throughput = tasks started in a fixed window while the backlog never runs dry.
/// </summary>
public static class Scale
{
    const int SlotBudget = 4;

    public static async Task RunAsync(BenchContext context, ScenarioResult result)
    {
        var settings = context.Settings;
        result.Columns.AddRange(
        [
            new("consumers", "consumer processes"),
            new("tasks_per_s", "throughput", "tasks/s"),
            new("per_consumer_per_s", "per process", "tasks/s"),
            new("ideal_per_s", "ideal", "tasks/s"),
            new("efficiency", "of ideal", "%"),
            new("speedup", "speedup vs 1"),
            new("rounds_per_s", "all rounds", "tasks/s"),
        ]);
        // Rounds go through every count in turn, so a shared machine's load falls on all of them alike; the best round is shown.
        var rounds = settings.Quick ? 1 : 2;
        var measured = settings.ScaleCounts.ToDictionary(c => c, _ => new List<Dictionary<string, object?>>());
        for (var round = 1; round <= rounds; round++)
        {
            foreach (var count in settings.ScaleCounts)
            {
                BenchContext.Log($"  scale round {round}: {count} consumer process(es)");
                measured[count].Add(await MeasureAsync(context, count));
            }
        }
        foreach (var count in settings.ScaleCounts)
        {
            var best = measured[count].MaxBy(r => (double)r["tasks_per_s"]!)!;
            best["rounds_per_s"] = string.Join(" / ", measured[count].Select(r => Tables.Format(r["tasks_per_s"])));
            result.Rows.Add(best);
        }
        var one = (double)result.Rows[0]["tasks_per_s"]!;
        foreach (var row in result.Rows)
            row["speedup"] = Stats.Round((double)row["tasks_per_s"]! / one, 2);
        // I/O-bound tasks scale with processes until the cores run out: strict 1.8x for 2 processes, relaxed (--quick) 1.3x.
        if (result.Rows.FirstOrDefault(r => (int)r["consumers"]! == 2) is { } two)
        {
            var speedup = (double)two["speedup"]!;
            var want = settings.Target(1.8, 1.3);
            result.Verdicts.Add(new Verdict($"2 consumer processes >= {want}x the throughput of 1{settings.TargetKind}", speedup >= want, $"{speedup:0.00}x"));
        }
        result.Notes.Add($"Queue-per-lane consumers, slot budget {SlotBudget}, generate max concurrency {SlotBudget} (so {SlotBudget} tasks " +
                         $"run at once per process); tasks: generate, sleep {settings.GenerateMs} ms. Ideal = processes x {SlotBudget} x 1000 / " +
                         $"{settings.GenerateMs} ms. Window: {settings.ScaleWindowSeconds:0.#} s of task starts, beginning 0.5 s after the backlog " +
                         "is published; the backlog is sized so it is never empty in the window. " +
                         $"{rounds} round(s), best shown.");
    }

    static async Task<Dictionary<string, object?>> MeasureAsync(BenchContext context, int count)
    {
        var settings = context.Settings;
        var ct = context.Token;
        var ideal = count * SlotBudget * 1000.0 / settings.GenerateMs;
        var backlog = (int)(ideal * (settings.ScaleWindowSeconds + 3));
        await using var vhost = await context.Broker.CreateVhostAsync("scale", ct);
        await using var listener = await ResultListener.StartAsync(vhost.Url, ct);
        using var fleet = await context.StartLaneQueueFleetAsync(vhost, count,
            [$"--LaneQueue:SlotBudget={SlotBudget}", $"--LaneQueue:Queue:GenerateMaxConcurrency={SlotBudget}"], priorityTopology: false, "scale");
        await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = vhost.Url }, ct);
        await Submit.ManyAsync(backlog, i => producer.SubmitTaskAsync(Submit.Sleep($"g-{i}", SessionLane.Generate, settings.GenerateMs), ct), ct);
        var from = DateTimeOffset.UtcNow.AddMilliseconds(500);
        var to = from.AddSeconds(settings.ScaleWindowSeconds);
        await Task.Delay(to - DateTimeOffset.UtcNow + TimeSpan.FromMilliseconds(300), ct);
        var left = (await vhost.QueueAsync(BrokerNames.LaneQueue(SessionLane.Generate), ct))?.Ready ?? 0;
        if (left == 0)
            BenchContext.Log("    warning: the backlog ran dry inside the window; throughput is understated");
        var started = listener.All.Count(r => r.StartedAt >= from && r.StartedAt < to);
        var perSecond = started / settings.ScaleWindowSeconds;
        var consumers = listener.All.Where(r => r.StartedAt >= from && r.StartedAt < to).Select(r => r.Consumer).Distinct().Count();
        BenchContext.Log($"    {perSecond:0} tasks/s ({consumers} processes took part; {left} still waiting)");
        return new Dictionary<string, object?>
        {
            ["consumers"] = count,
            ["tasks_per_s"] = Stats.Round(perSecond, 0),
            ["per_consumer_per_s"] = Stats.Round(perSecond / count, 0),
            ["ideal_per_s"] = Stats.Round(ideal, 0),
            ["efficiency"] = Stats.Round(100 * perSecond / ideal, 0),
            ["backlog"] = backlog,
            ["left_after_window"] = left,
            ["processes_seen"] = consumers,
        };
    }
}
