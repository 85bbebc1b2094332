namespace LaneQueue.Consumer;

/// <summary>
/// Limits of one lane for the whole fleet (<c>LaneQueue:FleetLimits:&lt;Lane&gt;</c>), on top of each process's own
/// (<c>Queue:&lt;Lane&gt;MaxConcurrency</c>, <c>LaneRateLimits</c>). Kept by the broker as token queues (see
/// <see cref="FleetLimits"/>): every consumer of the fleet must configure the same values.
/// </summary>
public sealed record FleetLaneLimit
{
    /// <summary>Most tasks of the lane running at once across every consumer; null: no fleet-wide cap.</summary>
    public int? MaxConcurrency { get; init; }

    /// <summary>
    /// Most task starts of the lane across every consumer in any window of the rate limit's period (a sliding window:
    /// each start token comes back one period after it was spent); <see cref="RateLimitType.Unlimited"/>: none.
    /// </summary>
    public RateLimit RateLimit { get; init; } = new();

    /// <summary>Largest cap or rate a fleet limit takes: each is that many messages in a token queue.</summary>
    public const int MaxTokens = 10_000;

    public bool IsEmpty => MaxConcurrency is null && RateLimit.Period is null;

    /// <summary>Problems with the settings, each naming the setting; empty when valid.</summary>
    public IEnumerable<string> Validate()
    {
        if (MaxConcurrency is < 1 or > MaxTokens)
            yield return $"MaxConcurrency must be between 1 and {MaxTokens}, got {MaxConcurrency}";
        foreach (var problem in RateLimit.Validate())
            yield return "RateLimit:" + problem;
        if (RateLimit.Period is not null && RateLimit.MaxOperations > MaxTokens)
            yield return $"RateLimit:MaxOperations must be at most {MaxTokens} for a fleet limit (one token message each), got {RateLimit.MaxOperations}";
    }
}
