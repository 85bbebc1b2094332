using System.Diagnostics;
using System.Runtime.InteropServices;
using LaneQueue.Bench;
using LaneQueue.Bench.Baselines;
using LaneQueue.Bench.Infra;
using LaneQueue.Bench.Report;
using LaneQueue.Bench.Scenarios;

// LaneQueue benchmarks against a real RabbitMQ. See bench/README.md.
//   dotnet LaneQueue.Bench.dll [--quick] [--only preemption,gate,...] [--out DIR]
//   dotnet LaneQueue.Bench.dll baseline-consumer --url U --queue Q --name N [--max-priority P] [--prefetch N] [--concurrency N]   (child process)
//   dotnet LaneQueue.Bench.dll raw-consumer --url U --queue Q --prefetch P --expect N [--results]  (child process)

using var cancel = new CancellationTokenSource();
var interrupts = 0;
var signalled = false;
double? capMinutes = null;
Console.CancelKeyPress += (_, e) =>
{
    // First Ctrl+C: stop the run and clean up in the finally blocks; second: kill the children and leave at once.
    e.Cancel = interrupts++ == 0;
    signalled = true;
    cancel.Cancel();
    if (!e.Cancel)
        ChildProcess.KillAll();
};
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c =>
{
    c.Cancel = true;
    signalled = true;
    cancel.Cancel();
});
AppDomain.CurrentDomain.ProcessExit += (_, _) => ChildProcess.KillAll();

var arguments = args.ToList();
string? Option(string name)
{
    var i = arguments.IndexOf(name);
    return i >= 0 && i + 1 < arguments.Count ? arguments[i + 1] : null;
}
bool Flag(string name) => arguments.Contains(name);

try
{
    switch (arguments.FirstOrDefault())
    {
        case "baseline-consumer":
            return await MassTransitBaseline.RunAsync(Option("--url")!, Option("--queue")!,
                Option("--max-priority") is { } p ? byte.Parse(p, System.Globalization.CultureInfo.InvariantCulture) : null,
                Option("--name") ?? "baseline",
                Option("--prefetch") is { } n ? int.Parse(n, System.Globalization.CultureInfo.InvariantCulture) : null,
                Option("--concurrency") is { } c ? int.Parse(c, System.Globalization.CultureInfo.InvariantCulture) : null, cancel.Token);
        case "raw-consumer":
            return await RawConsumer.RunAsync(Option("--url")!, Option("--queue")!,
                ushort.Parse(Option("--prefetch") ?? "16", System.Globalization.CultureInfo.InvariantCulture),
                (Option("--expect") ?? "1").Split(',').Select(e => long.Parse(e, System.Globalization.CultureInfo.InvariantCulture)).ToHashSet(),
                Flag("--results"), cancel.Token);
        case "--help" or "-h":
            Console.WriteLine("usage: LaneQueue.Bench [--quick] [--only preemption,gate,throughput,scale,memory,aging,fleet,flood4,cost,fairness] [--out DIR]");
            Console.WriteLine("       [--url AMQP_URL] [--management-url URL] [--consumer-dll PATH] [--max-minutes N] [--fail-on-missed]");
            return 0;
    }
    return await RunBenchAsync();
}
catch (OperationCanceledException) when (cancel.IsCancellationRequested)
{
    Console.Error.WriteLine(signalled
        ? "interrupted"
        : $"stopped: the run's cap of {capMinutes} minutes passed (--max-minutes N for a longer one)");
    return 130;
}
finally
{
    ChildProcess.KillAll();
}

async Task<int> RunBenchAsync()
{
    var quick = Flag("--quick");
    var root = FindRoot();
    var settings = new BenchSettings
    {
        Quick = quick,
        AmqpUrl = Option("--url") ?? (Environment.GetEnvironmentVariable("LANEQUEUE_RABBITMQ_URL") is { Length: > 0 } u ? u : "amqp://guest:guest@localhost:5672/"),
        ManagementUrl = Option("--management-url") ?? Environment.GetEnvironmentVariable("LANEQUEUE_RABBITMQ_MANAGEMENT_URL"),
        OutputDirectory = Path.GetFullPath(Option("--out") ?? Path.Combine(root, "bench", "results", quick ? "quick" : "")),
        ConsumerDll = Path.GetFullPath(Option("--consumer-dll") ?? Path.Combine(root, "src", "Worker", "bin", "Release", "net10.0", "LaneQueue.Worker.dll")),
        BenchDll = typeof(BenchSettings).Assembly.Location,
        Only = Option("--only")?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToHashSet(),
        FailOnMissed = quick || Flag("--fail-on-missed"),
    };
    if (!File.Exists(settings.ConsumerDll))
    {
        Console.Error.WriteLine($"The consumer is not built: {settings.ConsumerDll} is missing. Run 'dotnet build src/Worker -c Release' " +
                                "(scripts/bench.sh does) or pass --consumer-dll.");
        return 2;
    }
    // A hard cap on the whole run, whatever hangs: every wait below has its own time-out too.
    // The full run takes about 25 minutes on the 2-core machine (bench/results/latest.md has its run time).
    var maxMinutes = double.Parse(Option("--max-minutes") ?? (quick ? "5" : "45"), System.Globalization.CultureInfo.InvariantCulture);
    cancel.CancelAfter(TimeSpan.FromMinutes(maxMinutes));
    capMinutes = maxMinutes;

    using var broker = await Broker.ConnectAsync(settings.AmqpUrl, settings.ManagementUrl, cancel.Token);
    var context = new BenchContext(settings, broker, cancel.Token);
    var run = new RunResult
    {
        Mode = quick ? "quick" : "full",
        StartedAt = DateTimeOffset.UtcNow,
        Machine = await MachineInfo.DescribeAsync(broker, root, cancel.Token),
    };
    // Settings the consumers inherit from this environment (LaneQueue__Gate__Enabled=false turns the gate off for every
    // LaneQueue variant that does not set it itself): a run's results say so.
    var overrides = Environment.GetEnvironmentVariables().Keys.Cast<string>()
        .Where(k => k.StartsWith("LaneQueue__", StringComparison.OrdinalIgnoreCase)).Order(StringComparer.Ordinal)
        .Select(k => $"{k}={Environment.GetEnvironmentVariable(k)}").ToList();
    if (overrides.Count > 0)
    {
        run.Machine["consumer_environment"] = string.Join(" ", overrides);
        BenchContext.Log($"consumer settings from the environment: {run.Machine["consumer_environment"]}");
    }
    BenchContext.Log($"LaneQueue bench ({run.Mode}) against {Redact(settings.AmqpUrl)}; machine: {run.Machine["cpu"]}, {run.Machine["cores"]} cores, {run.Machine["memory"]}");
    var total = Stopwatch.StartNew();
    try
    {
        foreach (var (id, title, what, scenario) in Scenarios.All)
        {
            if (settings.Only is { } only && !only.Contains(id))
                continue;
            var result = new ScenarioResult { Id = id, Title = title, What = what };
            run.Scenarios.Add(result);
            BenchContext.Log($"{title}");
            var clock = Stopwatch.StartNew();
            try
            {
                await scenario(context, result);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancel.IsCancellationRequested)
            {
                result.Error = $"{ex.GetType().Name}: {ex.Message}";
                BenchContext.Log($"  FAILED: {result.Error}");
            }
            finally
            {
                ChildProcess.KillAll();
                result.Seconds = Math.Round(clock.Elapsed.TotalSeconds, 1);
            }
            BenchContext.Log($"  ({result.Seconds:0.0} s)");
        }
    }
    finally
    {
        ChildProcess.KillAll();
        Broker.DeleteAllSync();
    }
    run.TotalSeconds = Math.Round(total.Elapsed.TotalSeconds, 1);
    run.Machine["load_average_end"] = MachineInfo.LoadAverage();

    Directory.CreateDirectory(settings.OutputDirectory);
    Console.WriteLine();
    Console.WriteLine(Tables.Console(run));
    var written = await Writer.WriteAsync(run, settings.OutputDirectory);
    Console.WriteLine($"Total {run.TotalSeconds:0.0} s. Wrote {string.Join(", ", written.Select(f => Path.GetRelativePath(root, f)))}");
    var verdicts = run.Scenarios.SelectMany(s => s.Verdicts.Select(v => (s.Title, v))).ToList();
    var missed = verdicts.Where(x => !x.v.Met).ToList();
    Console.WriteLine($"Verdicts: {verdicts.Count - missed.Count} met, {missed.Count} missed ({(quick ? "quick run: relaxed targets" : "full run: strict targets")}).");
    if (run.Scenarios.Any(s => s.Error is not null))
        return 1;
    if (missed.Count > 0 && settings.FailOnMissed)
    {
        foreach (var (title, verdict) in missed)
            Console.Error.WriteLine($"BENCH FAILED: {title}: missed: {verdict.Target}: {verdict.Detail}");
        return 3;
    }
    return 0;
}

static string FindRoot()
{
    foreach (var start in new[] { Environment.CurrentDirectory, AppContext.BaseDirectory })
    {
        for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "LaneQueue.sln")))
                return dir.FullName;
        }
    }
    return Environment.CurrentDirectory;
}

static string Redact(string url) => LaneQueue.Producer.BrokerConnection.Redact(url);
