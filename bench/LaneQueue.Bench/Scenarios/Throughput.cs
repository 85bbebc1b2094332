using System.Diagnostics;
using System.Globalization;
using LaneQueue.Bench.Infra;
using LaneQueue.Contracts;
using LaneQueue.Producer;

namespace LaneQueue.Bench.Scenarios;

/// <summary>
/// 3. Throughput and overhead: no-op tasks (echo), persistent messages, publisher confirms, manual acks, one consumer
/// process, the same prefetch for LaneQueue and the raw client. Each measurement: a fresh vhost and consumer, a warm-up
/// batch (JIT, connections), then N tasks published and consumed at once, from the first publish to the last
/// completion. Rounds go through all variants in turn, so the load of a shared machine falls on all of them alike;
/// the best round of each variant is reported.
/// </summary>
public static class Throughput
{
    enum Kind
    {
        LaneQueue,
        Raw,
        RawWithResults,
        MassTransit,
    }

    /// <param name="Window">Deliveries the consumer holds when not the prefetch (LaneQueue's lane window, or a MassTransit prefetch
    /// above its concurrency); <paramref name="Args"/>: more consumer arguments.</param>
    sealed record Variant(string Key, string Name, Kind Kind, int Prefetch, int? Window = null, string[]? Args = null);

    /// <summary>The tasks run at once: 4 is LaneQueue's default for the query lane (QueryMaxConcurrency 4, slot budget 4; its
    /// endpoint holds PrefetchPerLimit (4) x 4 = 16 deliveries), the minimal MassTransit consumer's prefetch and concurrency 4;
    /// 16 is MassTransit's default prefetch on this machine, set on LaneQueue with QueryMaxConcurrency and SlotBudget.</summary>
    static readonly int[] Prefetches = [4, 16];

    static readonly Variant[] Variants = Prefetches.SelectMany(p => new Variant[]
    {
        new($"lanequeue-{p}", "LaneQueue (producer + consumer, query lane)", Kind.LaneQueue, p, Window: 4 * p),
        new($"masstransit-{p}", "minimal MassTransit consumer + result publish", Kind.MassTransit, p),
        new($"raw-{p}", "raw RabbitMQ.Client 7 (publish + consume + ack)", Kind.Raw, p),
        new($"raw-results-{p}", "raw RabbitMQ.Client 7 + confirmed result publish", Kind.RawWithResults, p),
    }).Concat(
    [
        // Two reported rows beside concurrency 4: LaneQueue with PrefetchPerLimit 2 (8 held, the default up to 1.3), and the
        // minimal MassTransit consumer holding as many as LaneQueue's default (prefetch 16, 4 at once): the same window for both.
        new("lanequeue-window2-4", "LaneQueue, PrefetchPerLimit 2", Kind.LaneQueue, 4, Window: 8, Args: ["--LaneQueue:PrefetchPerLimit=2"]),
        new("masstransit-window16-4", "minimal MassTransit consumer, prefetch 16, ConcurrentMessageLimit 4", Kind.MassTransit, 4, Window: 16),
    ]).ToArray();

    const string RawQueue = "bench.raw";

    public static async Task RunAsync(BenchContext context, ScenarioResult result)
    {
        var settings = context.Settings;
        var rounds = settings.Quick ? 1 : 3;
        result.Columns.AddRange(
        [
            new("variant", "variant"),
            new("prefetch", "at once"),
            new("window", "held"),
            new("publish_per_s", "publish rate", "tasks/s"),
            new("e2e_per_s", "end to end", "tasks/s"),
            new("rounds_per_s", "all rounds", "tasks/s"),
            new("e2e_vs_raw", "vs raw", "x"),
            new("consumer_cpu_us", "consumer CPU per task", "µs"),
            new("broker_cpu_us", "broker CPU per task", "µs"),
            new("broker_cpu_vs_mt", "broker CPU vs minimal MassTransit", "x"),
        ]);
        // The broker's own CPU (beam.smp of the node serving the URL, /proc/<pid>/stat), read around each measured phase; null when
        // the broker runs elsewhere (another machine, a container whose processes are not visible): its columns then say n/a.
        var node = (await context.Broker.GetAsync("api/overview", context.Token)).GetProperty("node").GetString();
        var brokerPid = ChildProcess.FindBrokerPid(node);
        if (brokerPid is null)
            BenchContext.Log($"    broker node {node}: its process is not visible here; broker CPU per task is n/a");
        var measured = Variants.ToDictionary(v => v.Key, _ => new List<Measurement>());
        for (var round = 1; round <= rounds; round++)
        {
            foreach (var variant in Variants.Where(v => Only is null || Only.Contains(v.Key)))
            {
                BenchContext.Log($"  throughput round {round}: {variant.Name}, prefetch {variant.Prefetch}");
                measured[variant.Key].Add(await MeasureAsync(context, variant, brokerPid));
            }
        }
        foreach (var variant in Variants)
        {
            var runs = measured[variant.Key];
            if (runs.Count == 0)
                continue;
            var best = runs.MaxBy(r => r.EndToEnd)!;
            result.Rows.Add(new Dictionary<string, object?>
            {
                ["key"] = variant.Key,
                ["variant"] = variant.Name,
                ["prefetch"] = variant.Prefetch,
                ["window"] = variant.Window ?? variant.Prefetch,
                ["tasks"] = settings.ThroughputTasks,
                ["publish_per_s"] = Stats.Round(best.Publish, 0),
                ["e2e_per_s"] = Stats.Round(best.EndToEnd, 0),
                ["rounds_per_s"] = string.Join(" / ", runs.Select(r => r.EndToEnd.ToString("0", CultureInfo.InvariantCulture))),
                ["consumer_cpu_us"] = Stats.Round(best.ConsumerCpuMicros, 0),
                ["broker_cpu_us"] = Stats.Round(best.BrokerCpuMicros, 0),
                ["broker_background_cpu_us"] = Stats.Round(best.BrokerBackgroundMicros, 0),
            });
        }
        foreach (var prefetch in Only is null ? Prefetches : [])
        {
            var raw = (double)result.Rows.Single(r => (string)r["key"]! == $"raw-{prefetch}")["e2e_per_s"]!;
            foreach (var row in result.Rows.Where(r => (int)r["prefetch"]! == prefetch))
                row["e2e_vs_raw"] = Stats.Round((double)row["e2e_per_s"]! / raw, 2);
            var lane = result.Rows.Single(r => (string)r["key"]! == $"lanequeue-{prefetch}");
            var ratio = (double)lane["e2e_per_s"]! / raw;
            var massTransit = (double)result.Rows.Single(r => (string)r["key"]! == $"masstransit-{prefetch}")["e2e_per_s"]!;
            // The 0.7x-raw target is the full run's (and missed, see the notes). Against MassTransit's own minimal consumer the full
            // run checks issue 20's target (0.85x); the quick run only that LaneQueue keeps a fair share of it (0.25x), which a
            // much slower task path misses.
            if (!settings.Quick)
            {
                result.Verdicts.Add(new Verdict($"prefetch {prefetch}: LaneQueue end-to-end throughput >= 0.7x raw RabbitMQ.Client", ratio >= 0.7,
                    $"{lane["e2e_per_s"]} / {raw} tasks/s = {ratio:0.00}x"));
            }
            var share = settings.Target(0.85, 0.25);
            result.Verdicts.Add(new Verdict($"prefetch {prefetch}: LaneQueue end-to-end throughput >= {share}x the minimal MassTransit consumer's{settings.TargetKind}",
                (double)lane["e2e_per_s"]! >= share * massTransit, $"{lane["e2e_per_s"]} / {massTransit:0} tasks/s = {(double)lane["e2e_per_s"]! / massTransit:0.00}x"));
            BrokerCpuVerdict(settings, result, prefetch, lane, result.Rows.Single(r => (string)r["key"]! == $"masstransit-{prefetch}"));
            result.Notes.Add($"prefetch {prefetch}: MassTransit's own minimal consumer reaches {massTransit / raw:0.00}x raw, so the 0.7x target cannot be met " +
                             $"with MassTransit on the task path; LaneQueue reaches {(double)lane["e2e_per_s"]! / massTransit:0.00}x of that minimal consumer " +
                             "(the rest is LaneQueue's per-task work: two lifecycle events, history stream writes, gate, slot budget, rate limits, metrics).");
        }
        result.Notes.Add($"{settings.ThroughputTasks} tasks per measurement after a warm-up of {Warmup(settings)} in the same fresh consumer process (steady state: " +
                         $"the runtime's tiered JIT has settled); {rounds} round(s), best shown; " +
                         "at most 256 unconfirmed publishes in flight for every producer. " +
                         "LaneQueue: LaneQueueProducer.SubmitTaskAsync into the query lane, one consumer process (prefetch 4: the default " +
                         "configuration; prefetch 16: --LaneQueue:Queue:QueryMaxConcurrency=16 --LaneQueue:SlotBudget=16); each task's result " +
                         "is published (confirmed) before the ack, and the bench reads every result. Raw: BasicPublishAsync to a durable queue, " +
                         "a consumer process with BasicQos(prefetch) and manual BasicAck (dispatch concurrency 1, the client's default). " +
                         "Raw + results: the raw consumer also publishes a confirmed result per task before acking, with dispatch concurrency " +
                         "= prefetch - the work LaneQueue does per task. Minimal MassTransit: the bench's baseline consumer (raw JSON, " +
                         "one handler that publishes a result, PrefetchCount = ConcurrentMessageLimit = prefetch): what MassTransit itself costs.");
        result.Notes.Add("CPU per task: user + system CPU time of the consumer process, and of the local broker (beam.smp), during the " +
                         "measured phase, divided by the tasks; the bench's own producer and result reader are not counted in the consumer's, " +
                         "but the broker's includes the work they cause (the same for every variant) and whatever else uses the broker meanwhile " +
                         $"(a shared broker: other vhosts' load lands on every variant alike). Broker: node {node}, " +
                         (brokerPid is { } bp ? $"pid {bp}. " : "process not visible here (n/a). ") +
                         $"Background: the broker's CPU rate over {(settings.Quick ? 1 : 2)} s of idle just before each measured phase (that variant's idle " +
                         "consumer and anything else on the broker) times the phase's length, per task: broker_background_cpu_us in the JSON; " +
                         "the broker CPU verdict's detail also gives the ratio above it (the verdict itself is on the plain numbers).");
        result.Notes.Add("At once / held: tasks run at once, and deliveries the consumer holds (its prefetch). LaneQueue's query lane holds " +
                         "LaneQueue:PrefetchPerLimit (4) x its limit: the tasks running and three times as many next ones, among them those whose " +
                         "handler returned while their result is confirmed and acked. Two rows beside 4 at once are reported, not checked: " +
                         "LaneQueue with --LaneQueue:PrefetchPerLimit=2 (8 held, the default up to 1.3), and the minimal MassTransit consumer " +
                         "holding as many as LaneQueue's default (prefetch 16, ConcurrentMessageLimit 4).");
        result.Notes.Add("End to end: from the first publish to the last completion (LaneQueue: the last result received by the bench; raw: the " +
                         "consumer's last ack). Publish rate: tasks / time to publish them all (confirmed) while the consumer runs.");
    }

    /// <summary>
    /// Broker CPU per task, LaneQueue against the minimal MassTransit consumer at the same prefetch (both publish a result per
    /// task; LaneQueue also publishes its lifecycle events and writes the history stream). Strict (full run): <= 1.5x. Not gated
    /// in --quick: a short phase on a shared 2-core machine is too noisy to gate on (see bench/README.md).
    /// </summary>
    static void BrokerCpuVerdict(BenchSettings settings, ScenarioResult result, int prefetch, Dictionary<string, object?> lane, Dictionary<string, object?> massTransit)
    {
        var laneMicros = (double)lane["broker_cpu_us"]!;
        var baseMicros = (double)massTransit["broker_cpu_us"]!;
        var ratio = laneMicros / baseMicros;
        var laneAbove = laneMicros - (double)lane["broker_background_cpu_us"]!;
        var baseAbove = baseMicros - (double)massTransit["broker_background_cpu_us"]!;
        lane["broker_cpu_vs_mt"] = Stats.Round(ratio, 2);
        massTransit["broker_cpu_vs_mt"] = double.IsNaN(baseMicros) ? double.NaN : 1.0;
        var detail = double.IsNaN(ratio)
            ? "n/a (the broker's process is not visible here)"
            : $"LaneQueue {laneMicros / 1000:0.000} ms vs minimal MassTransit {baseMicros / 1000:0.000} ms per task = {ratio:0.00}x " +
              $"(above the broker's idle background: {laneAbove / 1000:0.000} vs {baseAbove / 1000:0.000} ms = {laneAbove / baseAbove:0.00}x)";
        if (settings.Quick || double.IsNaN(ratio))
        {
            var why = settings.Quick ? "not gated in --quick" : "not checked";
            BenchContext.Log($"  [info, {why}] prefetch {prefetch}: broker CPU per task: {detail}");
            result.Notes.Add($"prefetch {prefetch}: broker CPU per task ({why}; the full run's target is <= 1.5x the minimal MassTransit consumer's): {detail}.");
            return;
        }
        result.Verdicts.Add(new Verdict($"prefetch {prefetch}: LaneQueue broker CPU per task <= 1.5x the minimal MassTransit consumer's", ratio <= 1.5, detail));
    }

    /// <summary>LANEQUEUE_BENCH_VARIANTS=lanequeue-16,raw-16 measures only those variants (a profiling aid; a partial run writes no verdict).</summary>
    static readonly HashSet<string>? Only = Environment.GetEnvironmentVariable("LANEQUEUE_BENCH_VARIANTS") is { Length: > 0 } keys
        ? keys.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).ToHashSet()
        : null;

    /// <summary>
    /// LANEQUEUE_BENCH_HISTORY=off removes the task-history stream's bindings in LaneQueue's vhosts once the consumer is up
    /// (a diagnostic: what the history costs per task; the product has no such switch).
    /// </summary>
    static readonly bool WithoutHistory = Environment.GetEnvironmentVariable("LANEQUEUE_BENCH_HISTORY") == "off";

    /// <summary>
    /// Tasks run before the measured ones in every fresh process. The consumers are measured in steady state: in a process's first
    /// ~15,000 tasks the runtime is still re-compiling hot code (tiered JIT with PGO), which doubled LaneQueue's and MassTransit's
    /// CPU per task in the first measurements (a profile showed a sixth of the consumer's CPU in the JIT). Same for every variant.
    /// </summary>
    static int Warmup(BenchSettings settings) => settings.Quick ? 4_000 : 20_000;

    sealed record Measurement(double Publish, double EndToEnd, double ConsumerCpuMicros, double BrokerCpuMicros, double BrokerBackgroundMicros);

    static async Task<Measurement> MeasureAsync(BenchContext context, Variant variant, int? brokerPid)
    {
        var n = context.Settings.ThroughputTasks;
        var warmup = Warmup(context.Settings);
        var ct = context.Token;
        await using var vhost = await context.Broker.CreateVhostAsync("tput", ct);
        await using var listener = await ResultListener.StartAsync(vhost.Url, ct);
        var laneQueue = variant.Kind == Kind.LaneQueue;
        List<string> laneArgs = variant.Prefetch == 4
            ? []
            : [$"--LaneQueue:Queue:QueryMaxConcurrency={variant.Prefetch}", $"--LaneQueue:SlotBudget={variant.Prefetch}"];
        laneArgs.AddRange(variant.Args ?? []);
        using IDisposable consumer = variant.Kind switch
        {
            Kind.LaneQueue => await context.StartLaneQueueFleetAsync(vhost, 1, laneArgs, priorityTopology: false, "tput"),
            Kind.MassTransit => await context.StartBaselineFleetAsync(vhost, 1, RawQueue, null, "tput", variant.Window ?? variant.Prefetch, concurrency: variant.Prefetch),
            _ => await context.StartRawConsumerAsync(vhost, RawQueue, variant.Prefetch, [warmup, warmup + n], variant.Kind == Kind.RawWithResults),
        };
        if (laneQueue && WithoutHistory)
        {
            // Diagnostic: the same run without the task-history stream's bindings: the results' copies (the consumer's
            // batches of lifecycle events go to the stream directly and stay; the command.# binding is gone since they do).
            var connection = await vhost.ConnectionAsync(ct); // the vhost's own, kept open
            await using var channel = await connection.CreateChannelAsync(cancellationToken: ct);
            await channel.QueueUnbindAsync(BrokerNames.History, BrokerNames.ResultsExchange, "#", cancellationToken: ct);
            await channel.QueueUnbindAsync(BrokerNames.History, BrokerNames.EventsExchange, "command.#", cancellationToken: ct);
        }
        // Completion: LaneQueue and the MassTransit consumer publish results the bench reads; the raw consumer prints milestones.
        var byResults = variant.Kind is Kind.LaneQueue or Kind.MassTransit;
        var rawProcess = byResults ? null : consumer as ChildProcess;
        var consumerProcess = consumer as ChildProcess ?? ((Fleet)consumer).Processes[0];

        await using var producer = laneQueue ? await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = vhost.Url }, ct) : null;
        await using var raw = laneQueue ? null : await RawPublisher.ConnectAsync(vhost.Url, ct);
        Task SubmitAsync(ExternalTask task) => producer is not null
            ? producer.SubmitTaskAsync(task, ct)
            : raw!.PublishAsync(RawQueue, task, withPriority: false, ct);

        async Task<DateTimeOffset> CompletedAsync(int total)
        {
            if (byResults)
            {
                if (!await ResultListener.UntilAsync(() => listener.Count >= total, TimeSpan.FromMinutes(3), ct, pollMs: 2))
                    throw new TimeoutException($"{variant.Name} completed {listener.Count} of {total} tasks in 3 minutes");
                return listener.All.Max(r => r.ReceivedAt);
            }
            var line = await rawProcess!.WaitForLineAsync(l => l.StartsWith($"done {total} ", StringComparison.Ordinal), TimeSpan.FromMinutes(3), ct);
            return DateTimeOffset.FromUnixTimeMilliseconds(long.Parse(line.Split(' ')[2], CultureInfo.InvariantCulture));
        }

        await Submit.ManyAsync(warmup, i => SubmitAsync(Submit.Echo($"w-{i}", SessionLane.Query)), ct);
        await CompletedAsync(warmup);

        // The broker's background (this variant's idle consumer, and whatever else uses a shared broker): its CPU over a short idle
        // span just before the measured phase, as a rate; reported next to the per-task number, not subtracted from it.
        var idleSpan = TimeSpan.FromSeconds(context.Settings.Quick ? 1 : 2);
        var idleFrom = brokerPid is { } ip ? ChildProcess.CpuTimeOf(ip) : null;
        await Task.Delay(idleSpan, ct);
        var idleRate = brokerPid is { } ip2 && idleFrom is { } i0 && ChildProcess.CpuTimeOf(ip2) is { } i1
            ? (i1 - i0).TotalMilliseconds / idleSpan.TotalSeconds
            : double.NaN; // ms of broker CPU per s
        var consumerCpu = consumerProcess.CpuTime();
        var brokerCpu = brokerPid is { } bp ? ChildProcess.CpuTimeOf(bp) : null;
        var start = DateTimeOffset.UtcNow;
        var clock = Stopwatch.StartNew();
        await Submit.ManyAsync(n, i => SubmitAsync(Submit.Echo($"e-{i}", SessionLane.Query)), ct);
        var publishPerSecond = n / clock.Elapsed.TotalSeconds;
        var end = await CompletedAsync(warmup + n);
        var e2ePerSecond = n / (end - start).TotalSeconds;
        var consumerMicros = (consumerProcess.CpuTime() - consumerCpu)?.TotalMicroseconds / n ?? double.NaN;
        var brokerMicros = brokerPid is { } pid && brokerCpu is { } before && ChildProcess.CpuTimeOf(pid) is { } after
            ? (after - before).TotalMicroseconds / n
            : double.NaN;
        var phaseSeconds = (DateTimeOffset.UtcNow - start).TotalSeconds;
        var backgroundMicros = idleRate * 1000 * phaseSeconds / n; // the idle rate over the phase, per task
        BenchContext.Log($"    publish {publishPerSecond:0}/s, end to end {e2ePerSecond:0}/s; CPU per task: consumer {consumerMicros:0} µs, broker {brokerMicros:0} µs " +
                         $"(of which background at the idle rate before the phase, {idleRate:0} ms/s: {backgroundMicros:0} µs)");
        return new Measurement(publishPerSecond, e2ePerSecond, consumerMicros, brokerMicros, backgroundMicros);
    }
}
