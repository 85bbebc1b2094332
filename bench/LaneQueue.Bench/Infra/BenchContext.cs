using System.Diagnostics;
using LaneQueue.Contracts;

namespace LaneQueue.Bench.Infra;

/// <summary>A group of consumer processes of one variant; disposing it kills them.</summary>
public sealed class Fleet(List<ChildProcess> processes) : IDisposable
{
    public IReadOnlyList<ChildProcess> Processes { get; } = processes;

    public void Dispose()
    {
        foreach (var process in Processes)
            process.Dispose();
    }
}

/// <summary>What every scenario needs: settings, the broker, the run's cancellation, a log, and process starters.</summary>
public sealed class BenchContext(BenchSettings settings, Broker broker, CancellationToken cancellationToken)
{
    static readonly Stopwatch Clock = Stopwatch.StartNew();

    public BenchSettings Settings { get; } = settings;
    public Broker Broker { get; } = broker;
    public CancellationToken Token { get; } = cancellationToken;

    public static void Log(string message) => Console.WriteLine($"[{Clock.Elapsed.TotalSeconds,6:0.0}s] {message}");

    public static readonly string[] LaneQueues = SessionLanes.All.Select(BrokerNames.LaneQueue).ToArray();

    /// <summary>
    /// Starts <paramref name="count"/> LaneQueue consumer processes (the built Release consumer, run from its own folder
    /// so its appsettings.json applies) with the vhost's URL and <paramref name="arguments"/>, and waits until every
    /// one of them consumes each of its queues.
    /// </summary>
    /// <remarks>With <paramref name="batch"/>, starts that many at a time and waits for each batch before the next (a large
    /// fleet on a small machine).</remarks>
    public async Task<Fleet> StartLaneQueueFleetAsync(Vhost vhost, int count, IEnumerable<string> arguments, bool priorityTopology,
        string label, int? batch = null)
    {
        var extra = arguments.ToList();
        if (priorityTopology)
            extra.Add("--LaneQueue:Topology=PriorityQueue");
        var processes = new List<ChildProcess>();
        var fleet = new Fleet(processes);
        try
        {
            for (var i = 0; i < count; i++)
            {
                var name = $"bench-{label}-{i}";
                processes.Add(ChildProcess.Start(name, "dotnet",
                [
                    Settings.ConsumerDll,
                    $"--LaneQueue:RabbitMqUrl={vhost.Url}",
                    $"--LaneQueue:ConsumerName={name}",
                    "--LaneQueue:ShutdownTimeoutSeconds=2",
                    "--Worker:BuiltInHandlers=true",
                    .. extra,
                ], Path.GetDirectoryName(Settings.ConsumerDll)));
                if (batch is { } size && processes.Count % size == 0 && processes.Count < count)
                    await vhost.WaitForConsumersAsync(priorityTopology ? [BrokerNames.PriorityQueue] : LaneQueues, processes.Count, TimeSpan.FromSeconds(60), () => Failure(processes), Token);
            }
            var queues = priorityTopology ? [BrokerNames.PriorityQueue] : LaneQueues;
            await vhost.WaitForConsumersAsync(queues, count, TimeSpan.FromSeconds(60), () => Failure(processes), Token);
            return fleet;
        }
        catch
        {
            fleet.Dispose();
            throw;
        }
    }

    /// <summary>Starts <paramref name="count"/> MassTransit baseline consumers (this program in baseline-consumer mode).</summary>
    public async Task<Fleet> StartBaselineFleetAsync(Vhost vhost, int count, string queue, byte? maxPriority, string label, int? prefetch = null, int? concurrency = null)
    {
        var processes = new List<ChildProcess>();
        var fleet = new Fleet(processes);
        try
        {
            for (var i = 0; i < count; i++)
            {
                List<string> args = [Settings.BenchDll, "baseline-consumer", "--url", vhost.Url, "--queue", queue, "--name", $"bench-{label}-{i}"];
                if (maxPriority is { } p)
                    args.AddRange(["--max-priority", p.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
                if (prefetch is { } n)
                    args.AddRange(["--prefetch", n.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
                if (concurrency is { } c)
                    args.AddRange(["--concurrency", c.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
                processes.Add(ChildProcess.Start($"bench-{label}-{i}", "dotnet", args));
            }
            await vhost.WaitForConsumersAsync([queue], count, TimeSpan.FromSeconds(60), () => Failure(processes), Token);
            return fleet;
        }
        catch
        {
            fleet.Dispose();
            throw;
        }
    }

    /// <summary>Starts the raw RabbitMQ.Client consumer (this program in raw-consumer mode).</summary>
    public async Task<ChildProcess> StartRawConsumerAsync(Vhost vhost, string queue, int prefetch, IEnumerable<int> milestones, bool results)
    {
        List<string> args = [Settings.BenchDll, "raw-consumer", "--url", vhost.Url, "--queue", queue,
            "--prefetch", prefetch.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--expect", string.Join(',', milestones.Select(m => m.ToString(System.Globalization.CultureInfo.InvariantCulture)))];
        if (results)
            args.Add("--results");
        var process = ChildProcess.Start("bench-raw", "dotnet", args);
        try
        {
            await vhost.WaitForConsumersAsync([queue], 1, TimeSpan.FromSeconds(60), () => Failure([process]), Token);
            return process;
        }
        catch
        {
            process.Dispose();
            throw;
        }
    }

    static string? Failure(IEnumerable<ChildProcess> processes) =>
        processes.FirstOrDefault(p => p.HasExited) is { } dead
            ? $"{dead.Name} exited with code {dead.ExitCode} while starting:{Environment.NewLine}{dead.Tail()}"
            : null;
}
