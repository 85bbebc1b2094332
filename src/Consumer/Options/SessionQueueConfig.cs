using LaneQueue.Contracts;

namespace LaneQueue.Consumer;

/// <summary>
/// Queue behaviour, with the field names and defaults of the original lane queue. Bound from the
/// <c>LaneQueue:Queue</c> configuration section by the consumer.
/// </summary>
public sealed record SessionQueueConfig
{
    public int ControlMaxConcurrency { get; init; } = 2;
    public int QueryMaxConcurrency { get; init; } = 4;
    public int ExecuteMaxConcurrency { get; init; } = 2;
    public int GenerateMaxConcurrency { get; init; } = 1;

    /// <summary>Handler mode and timeout per lane; lanes not listed run Internal with the default timeout.</summary>
    public Dictionary<SessionLane, LaneHandlerConfig> LaneHandlers { get; init; } = [];

    /// <summary>
    /// Dead-letter queue size at which the consumer logs an alert. Dead letters are always kept (never evicted, unlike the
    /// original's DLQ, which dropped the oldest): the broker policy <c>lanequeue-dead-letters</c> bounds them.
    /// </summary>
    public int DlqMaxSize { get; init; } = 1000;

    /// <summary>
    /// Record the <c>LaneQueue</c> meter's metrics (counters, gauges, histograms). On by default here (the original's default
    /// is off); false leaves the meter empty. The fleet heartbeat's counts are kept either way.
    /// </summary>
    public bool EnableMetrics { get; init; } = true;
    public bool EnableAlerts { get; init; }
    public int AlertWarningDepth { get; init; } = 50;
    public int AlertCriticalDepth { get; init; } = 100;

    public long? DefaultTimeoutMs { get; init; }
    public Dictionary<SessionLane, long> LaneTimeouts { get; init; } = [];

    public RetryPolicy RetryPolicy { get; init; } = new();
    public RateLimit RateLimit { get; init; } = new();
    public PriorityBoost PriorityBoost { get; init; } = new();

    /// <summary>Depth at which a lane emits <c>lane.pressure</c> (and <c>lane.idle</c> when it drains); null = off.</summary>
    public int? PressureThreshold { get; init; }

    public int MaxConcurrency(SessionLane lane) => lane switch
    {
        SessionLane.Control => ControlMaxConcurrency,
        SessionLane.Query => QueryMaxConcurrency,
        SessionLane.Execute => ExecuteMaxConcurrency,
        SessionLane.Generate => GenerateMaxConcurrency,
        _ => throw new ArgumentOutOfRangeException(nameof(lane)),
    };

    public LaneHandlerConfig Handler(SessionLane lane) =>
        LaneHandlers.TryGetValue(lane, out var handler) ? handler : new LaneHandlerConfig();

    /// <summary>The lane's timeout: <see cref="LaneTimeouts"/>, else <see cref="DefaultTimeoutMs"/>, else none.</summary>
    public long? TimeoutMs(SessionLane lane) => LaneTimeouts.TryGetValue(lane, out var ms) ? ms : DefaultTimeoutMs;

    /// <summary>DLQ (1000) + metrics + alerts + 60 s default timeout, as the original's builder.</summary>
    public SessionQueueConfig WithLaneFeatures() => this with
    {
        DlqMaxSize = 1000,
        EnableMetrics = true,
        EnableAlerts = true,
        DefaultTimeoutMs = 60_000,
    };

    /// <summary>Metrics on (the original's <c>with_metrics()</c>).</summary>
    public SessionQueueConfig WithMetrics() => this with { EnableMetrics = true };

    /// <summary>The Python and Node SDKs' name for <see cref="WithLaneFeatures"/>.</summary>
    public SessionQueueConfig EnableAllFeatures() => WithLaneFeatures();

    /// <summary>Problems with the settings, each naming the setting; empty when valid.</summary>
    public IEnumerable<string> Validate()
    {
        foreach (var lane in SessionLanes.All)
        {
            if (MaxConcurrency(lane) is < 1 or > 1000)
                yield return $"{lane}MaxConcurrency must be between 1 and 1000, got {MaxConcurrency(lane)}";
        }
        if (DlqMaxSize < 1)
            yield return $"DlqMaxSize must be positive, got {DlqMaxSize}";
        if (DefaultTimeoutMs is <= 0)
            yield return $"DefaultTimeoutMs must be positive, got {DefaultTimeoutMs}";
        foreach (var (lane, ms) in LaneTimeouts)
        {
            if (ms <= 0)
                yield return $"LaneTimeouts:{lane} must be positive, got {ms}";
        }
        if (AlertWarningDepth < 1 || AlertCriticalDepth < AlertWarningDepth)
            yield return $"AlertWarningDepth ({AlertWarningDepth}) must be positive and at most AlertCriticalDepth ({AlertCriticalDepth})";
        if (PressureThreshold is < 1)
            yield return $"PressureThreshold must be positive, got {PressureThreshold}";
        foreach (var problem in RetryPolicy.Validate())
            yield return "RetryPolicy:" + problem;
        foreach (var problem in RateLimit.Validate())
            yield return "RateLimit:" + problem;
        foreach (var problem in PriorityBoost.Validate())
            yield return "PriorityBoost:" + problem;
        foreach (var (lane, handler) in LaneHandlers)
        {
            if (handler.TimeoutMs <= 0)
                yield return $"LaneHandlers:{lane}:TimeoutMs must be positive, got {handler.TimeoutMs}";
        }
    }
}

public sealed record LaneHandlerConfig
{
    public TaskHandlerMode Mode { get; init; } = TaskHandlerMode.Internal;
    public long TimeoutMs { get; init; } = 60_000;
}
