using System.Text.Json.Serialization;

namespace LaneQueue.Bench;

/// <summary>The settings of one run; <see cref="Quick"/> shrinks every scenario so the run fits 2 minutes.</summary>
public sealed record BenchSettings
{
    public bool Quick { get; init; }
    public required string AmqpUrl { get; init; }
    public string? ManagementUrl { get; init; }
    public required string OutputDirectory { get; init; }
    public required string ConsumerDll { get; init; }
    public required string BenchDll { get; init; }
    public IReadOnlySet<string>? Only { get; init; }

    /// <summary>Exit 3 when a verdict is missed. Always on in --quick (CI), where the verdicts are the relaxed ones.</summary>
    public bool FailOnMissed { get; init; }

    /// <summary>
    /// A target's threshold: the full run's strict one, or the quick run's relaxed one (a smaller, shorter run on a CI
    /// machine: loose enough not to flake, tight enough that a broken gate or a much slower task path misses it).
    /// </summary>
    public double Target(double strict, double relaxed) => Quick ? relaxed : strict;

    /// <summary>Appended to a verdict's target: says which thresholds were applied.</summary>
    public string TargetKind => Quick ? " [quick: relaxed target]" : "";

    // 1. preemption
    public int PreemptionBacklog => Quick ? 2_000 : 10_000;
    public int PreemptionSamples => Quick ? 10 : 50;
    public int QueryRatePerSecond => 10;
    public int GenerateMs => 20;

    // 2. gate reaction
    public int GateBacklog => Quick ? 1_500 : 3_000;
    public int GateBursts => 3;
    public int GateBurstSize => 40;
    public int GateBurstTaskMs => 100;
    public int GateBurstGapMs => Quick ? 500 : 1000;

    // 3. throughput
    public int ThroughputTasks => Quick ? 3_000 : 15_000;

    // 4. scale
    public int[] ScaleCounts => [1, 2, 4];
    public double ScaleWindowSeconds => Quick ? 2 : 6;

    // 5. memory
    public int MemoryBacklog => Quick ? 20_000 : 100_000;
    public int MemorySettleMs => Quick ? 500 : 1000;

    // 7. fleet size (full run only)
    public int[] FleetSizes => [1, 4, 16, 32];
    public int FleetSettleSeconds => 5;
    public int FleetIdleSeconds => 20;
    public int FleetTaskRate => 100;
    public int FleetLoadSeconds => 15;

    // 6. aging
    public int AgingDeadlineMs => 3_000;
    public int AgingProbes => Quick ? 2 : 3;

    // 8. four-lane flood
    public int Flood4Tasks => Quick ? 1_000 : 4_000;

    // 10. session fairness (only with --only fairness)
    public int FairnessBacklog => Quick ? 1_000 : 2_000;
}

/// <summary>A column of a result table: the key in each row and its header.</summary>
public sealed record Column(string Key, string Header, string? Unit = null);

/// <summary>Whether a target was met, with the numbers that decided it.</summary>
public sealed record Verdict(string Target, bool Met, string Detail);

/// <summary>The result of one scenario: a table (one row per variant), verdicts and notes.</summary>
public sealed class ScenarioResult
{
    public required string Id { get; init; }
    public required string Title { get; init; }
    public required string What { get; init; }
    public List<Column> Columns { get; init; } = [];
    public List<Dictionary<string, object?>> Rows { get; init; } = [];
    public List<Verdict> Verdicts { get; init; } = [];
    public List<string> Notes { get; init; } = [];
    public double Seconds { get; set; }
    public string? Error { get; set; }

    /// <summary>Raw samples per variant (e.g. each query's wait), kept in the JSON for plots and re-analysis.</summary>
    public Dictionary<string, List<double>> Samples { get; init; } = [];
}

public sealed class RunResult
{
    public required string Mode { get; init; }
    public required Dictionary<string, string> Machine { get; init; }
    public DateTimeOffset StartedAt { get; init; }
    public double TotalSeconds { get; set; }
    public List<ScenarioResult> Scenarios { get; init; } = [];

    [JsonIgnore]
    public bool AllTargetsMet => Scenarios.All(s => s.Error is null && s.Verdicts.All(v => v.Met));
}

public static class Stats
{
    /// <summary>Nearest-rank percentile (p in 0..100) of the values; NaN when there are none.</summary>
    public static double Percentile(IReadOnlyCollection<double> values, double p)
    {
        if (values.Count == 0)
            return double.NaN;
        var sorted = values.OrderBy(v => v).ToArray();
        var rank = (int)Math.Ceiling(p / 100.0 * sorted.Length);
        return sorted[Math.Clamp(rank - 1, 0, sorted.Length - 1)];
    }

    public static double Round(double value, int digits = 1) => double.IsNaN(value) ? double.NaN : Math.Round(value, digits);
}
