using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using LaneQueue.Bench.Infra;
using LaneQueue.Contracts;
using LaneQueue.Producer;

namespace LaneQueue.Bench.Scenarios;

/// <summary>
/// 7. Fleet size: what the broker pays for each consumer process, measured at the broker. For N = 1, 4, 16 and 32
/// queue-per-lane consumer processes (slot budget 1, so they fit a small machine; most of them idle): at idle, the broker
/// node's CPU (beam.smp, /proc) and the AMQP frames it receives from the vhost's connections (rabbitmqctl
/// list_connections recv_cnt: exact, read from the sockets); under a fixed rate of echo tasks, the deliveries and
/// publishes per task (management API message_stats of the vhost, read once the counters have settled) and the broker CPU
/// per task. Full run only (starting 32 processes is not cheap).
/// </summary>
public static class FleetSize
{
    const int SlotBudget = 1;

    public static async Task RunAsync(BenchContext context, ScenarioResult result)
    {
        var settings = context.Settings;
        var ct = context.Token;
        result.Columns.AddRange(
        [
            new("consumers", "consumer processes"),
            new("connections", "connections"),
            new("idle_broker_cpu_pct", "idle: broker CPU", "% of a core"),
            new("idle_frames_per_s", "idle: frames received", "/s"),
            new("idle_deliveries_per_s", "idle: deliveries", "/s"),
            new("deliveries_per_task", "deliveries per task"),
            new("publishes_per_task", "publishes per task"),
            new("broker_cpu_per_task_ms", "broker CPU per task", "ms"),
            new("broker_cpu_above_idle_per_task_ms", "... above idle", "ms"),
        ]);
        if (settings.Quick)
        {
            result.Notes.Add("Not run in --quick: it starts up to 32 consumer processes. Run it with `bash scripts/bench.sh --only fleet`.");
            return;
        }
        var overview = await context.Broker.GetAsync("api/overview", ct);
        var node = overview.GetProperty("node").GetString();
        var brokerPid = ChildProcess.FindBrokerPid(node);
        if (brokerPid is null)
            BenchContext.Log($"    warning: the process of broker node {node} is not visible here; no broker CPU");

        result.Rows.Add(await MeasureAsync(context, 0, node, brokerPid));
        foreach (var count in settings.FleetSizes)
        {
            BenchContext.Log($"  fleet size: {count} consumer process(es)");
            result.Rows.Add(await MeasureAsync(context, count, node, brokerPid));
        }

        var withConsumers = result.Rows.Where(r => (int)r["consumers"]! > 0).ToList();
        var smallest = withConsumers.First();
        var largest = withConsumers.Last();
        var perTaskSmall = (double)smallest["deliveries_per_task"]!;
        var perTaskLarge = (double)largest["deliveries_per_task"]!;
        result.Verdicts.Add(new Verdict($"deliveries per task with {largest["consumers"]} consumers <= those with {smallest["consumers"]} + 0.5 (flat in N)",
            perTaskLarge <= perTaskSmall + 0.5, $"{perTaskSmall:0.##} with {smallest["consumers"]}, {perTaskLarge:0.##} with {largest["consumers"]}"));
        result.Notes.Add($"Broker node {node}{(brokerPid is { } p ? $" (pid {p})" : "")}. Consumers: queue-per-lane, slot budget {SlotBudget}, " +
                         $"the rest defaults (gate check 25 ms, heartbeat 2 s); started {StartBatch} at a time. Idle: {settings.FleetIdleSeconds} s " +
                         $"after a {settings.FleetSettleSeconds} s settle. Load: {settings.FleetTaskRate} echo tasks/s on the query lane for " +
                         $"{settings.FleetLoadSeconds} s; per-task numbers divide the vhost's message_stats (deliver_get, publish; the " +
                         "bench's own result listener counts as one delivery per task), deliveries from every queue but the lane-state " +
                         "followers' (amq.gen-*, periodic: the idle deliveries column), read once settled before and after the load; publishes less " +
                         "the idle (heartbeat) publish rate over that span (approximate: the API samples every 5 s), and the broker's CPU from the first publish to the " +
                         "last result by the task count; '... above idle' subtracts the idle CPU rate over the same span. Frames: AMQP " +
                         "frames the broker received from the vhost's connections (rabbitmqctl list_connections recv_cnt).");
    }

    const int StartBatch = 4;

    static async Task<Dictionary<string, object?>> MeasureAsync(BenchContext context, int count, string? node, int? brokerPid)
    {
        var settings = context.Settings;
        var ct = context.Token;
        await using var vhost = await context.Broker.CreateVhostAsync("fleet", ct);
        await using var listener = await ResultListener.StartAsync(vhost.Url, ct);
        using var fleet = count == 0
            ? new Fleet([])
            : await context.StartLaneQueueFleetAsync(vhost, count, [$"--LaneQueue:SlotBudget={SlotBudget}"], priorityTopology: false, "fleet", StartBatch);
        await Task.Delay(TimeSpan.FromSeconds(settings.FleetSettleSeconds), ct);

        // Idle.
        var (idleDelivered0, idlePublished0) = await StatsAsync(context, vhost.Name, ct);
        var framesBefore = await FramesAsync(node, vhost.Name, ct);
        var cpuBefore = brokerPid is { } pid ? ChildProcess.CpuTimeOf(pid) : null;
        var idleClock = Stopwatch.StartNew();
        await Task.Delay(TimeSpan.FromSeconds(settings.FleetIdleSeconds), ct);
        var idleSeconds = idleClock.Elapsed.TotalSeconds;
        var cpuAfter = brokerPid is { } pid2 ? ChildProcess.CpuTimeOf(pid2) : null;
        var framesAfter = await FramesAsync(node, vhost.Name, ct);
        var (idleDelivered1, idlePublished1) = await StatsAsync(context, vhost.Name, ct);
        // Heartbeats are published and lane states delivered at idle too; sampled every 5 s, so these rates are approximate.
        var idlePublishRate = (idlePublished1 - idlePublished0) / idleSeconds;
        var idleDeliverRate = (idleDelivered1 - idleDelivered0) / idleSeconds;
        var idleCpuShare = cpuBefore is { } b && cpuAfter is { } a ? (a - b).TotalSeconds / idleSeconds : double.NaN;
        var idleFrames = framesBefore is { } fb && framesAfter is { } fa ? (fa.Frames - fb.Frames) / idleSeconds : double.NaN;
        var row = new Dictionary<string, object?>
        {
            ["consumers"] = count,
            ["connections"] = framesAfter?.Connections,
            ["idle_broker_cpu_pct"] = Stats.Round(100 * idleCpuShare, 2),
            ["idle_frames_per_s"] = Stats.Round(idleFrames, 0),
            ["idle_frames_per_s_per_consumer"] = count > 0 ? Stats.Round(idleFrames / count, 1) : null,
            ["idle_deliveries_per_s"] = Stats.Round(idleDeliverRate, 1),
        };
        BenchContext.Log($"    idle: broker CPU {100 * idleCpuShare:0.00} % of a core, {idleFrames:0} frames/s received, {framesAfter?.Connections} connections");
        if (count == 0)
            return row;

        // A fixed task rate.
        var delivered0 = await SettledTaskDeliveriesAsync(context, vhost.Name, ct);
        var (_, published0) = await StatsAsync(context, vhost.Name, ct);
        var statsClock = Stopwatch.StartNew();
        await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = vhost.Url }, ct);
        var tasks = settings.FleetTaskRate * settings.FleetLoadSeconds;
        var loadCpuBefore = brokerPid is { } pid3 ? ChildProcess.CpuTimeOf(pid3) : null;
        var loadClock = Stopwatch.StartNew();
        var submits = new List<Task>(tasks);
        for (var i = 0; i < tasks; i++)
        {
            var due = TimeSpan.FromSeconds((double)i / settings.FleetTaskRate) - loadClock.Elapsed;
            if (due > TimeSpan.Zero)
                await Task.Delay(due, ct);
            submits.Add(producer.SubmitTaskAsync(Submit.Echo($"f-{i}", SessionLane.Query), ct));
        }
        await Task.WhenAll(submits);
        if (!await ResultListener.UntilAsync(() => listener.Count >= tasks, TimeSpan.FromMinutes(2), ct, pollMs: 5))
            throw new TimeoutException($"{count} consumers completed {listener.Count} of {tasks} tasks in 2 minutes");
        var loadSeconds = loadClock.Elapsed.TotalSeconds;
        var loadCpuAfter = brokerPid is { } pid4 ? ChildProcess.CpuTimeOf(pid4) : null;
        var delivered1 = await SettledTaskDeliveriesAsync(context, vhost.Name, ct);
        var (_, published1) = await StatsAsync(context, vhost.Name, ct);
        var loadCpu = loadCpuBefore is { } lb && loadCpuAfter is { } la ? (la - lb).TotalMilliseconds : double.NaN;
        row["tasks"] = tasks;
        row["load_seconds"] = Stats.Round(loadSeconds, 1);
        row["deliveries_per_task"] = Stats.Round((double)(delivered1 - delivered0) / tasks, 2);
        row["publishes_per_task"] = Stats.Round((published1 - published0 - idlePublishRate * statsClock.Elapsed.TotalSeconds) / tasks, 2);
        row["broker_cpu_per_task_ms"] = Stats.Round(loadCpu / tasks, 3);
        row["broker_cpu_above_idle_per_task_ms"] = Stats.Round((loadCpu - idleCpuShare * loadSeconds * 1000) / tasks, 3);
        row["consumers_that_ran_tasks"] = listener.All.Select(r => r.Consumer).Distinct().Count();
        BenchContext.Log($"    {tasks} tasks at {settings.FleetTaskRate}/s: {row["deliveries_per_task"]} deliveries and {row["publishes_per_task"]} publishes per task, " +
                         $"broker CPU {row["broker_cpu_per_task_ms"]} ms per task ({row["broker_cpu_above_idle_per_task_ms"]} above idle)");
        return row;
    }

    /// <summary>The vhost's cumulative deliveries (deliver_get) and publishes, as the management API last sampled them (every 5 s).</summary>
    /// <summary>
    /// Deliveries from the vhost's queues other than the lane-state followers' (server-named <c>amq.gen-*</c>: one delivery
    /// per consumer per broadcast, whatever the task rate: counted as idle deliveries), once the sum stops changing: nothing
    /// else is delivered at idle, and the management API samples every 5 s, so it is read until two reads 6 s apart agree.
    /// </summary>
    static async Task<long> SettledTaskDeliveriesAsync(BenchContext context, string vhost, CancellationToken ct)
    {
        long? last = null;
        for (var attempt = 0; attempt < 20; attempt++)
        {
            var queues = await context.Broker.GetAsync($"api/queues/{Uri.EscapeDataString(vhost)}", ct);
            var current = queues.EnumerateArray()
                .Where(q => !q.GetProperty("name").GetString()!.StartsWith("amq.gen-", StringComparison.Ordinal))
                .Sum(q => q.TryGetProperty("message_stats", out var m) ? Counter(m, "deliver_get") : 0);
            if (last == current)
                return current;
            last = current;
            await Task.Delay(TimeSpan.FromSeconds(6), ct);
        }
        throw new TimeoutException($"the deliveries of vhost {vhost} did not settle");
    }

    static async Task<(long Delivered, long Published)> StatsAsync(BenchContext context, string vhost, CancellationToken ct)
    {
        var stats = await context.Broker.GetAsync($"api/vhosts/{Uri.EscapeDataString(vhost)}", ct);
        return stats.TryGetProperty("message_stats", out var m) ? (Counter(m, "deliver_get"), Counter(m, "publish")) : (0L, 0L);
    }

    static long Counter(JsonElement stats, string name) => stats.TryGetProperty(name, out var value) ? value.GetInt64() : 0;

    /// <summary>Frames received by the broker from the vhost's connections so far, and how many connections there are.</summary>
    static async Task<(long Frames, int Connections)?> FramesAsync(string? node, string vhost, CancellationToken ct)
    {
        if (node is null)
            return null;
        var info = new ProcessStartInfo("rabbitmqctl") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in new[] { "-q", "-n", node, "list_connections", "vhost", "recv_cnt", "--formatter", "json" })
            info.ArgumentList.Add(argument);
        try
        {
            using var process = Process.Start(info)!;
            var output = await process.StandardOutput.ReadToEndAsync(ct);
            await process.WaitForExitAsync(ct).WaitAsync(TimeSpan.FromSeconds(30), ct);
            if (process.ExitCode != 0)
                return null;
            var connections = JsonSerializer.Deserialize<JsonElement>(output).EnumerateArray()
                .Where(c => c.GetProperty("vhost").GetString() == vhost).ToList();
            return (connections.Sum(c => c.GetProperty("recv_cnt").GetInt64()), connections.Count);
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null; // no rabbitmqctl on this machine
        }
    }
}
