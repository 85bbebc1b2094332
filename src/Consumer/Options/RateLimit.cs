using LaneQueue.Contracts;

namespace LaneQueue.Consumer;

public enum RateLimitType
{
    Unlimited,
    PerSecond,
    PerMinute,
    PerHour,
}

/// <summary>How many task starts are allowed per period; <see cref="RateLimitType.Unlimited"/> by default.</summary>
public sealed record RateLimit
{
    public RateLimitType LimitType { get; init; } = RateLimitType.Unlimited;
    public int MaxOperations { get; init; } = 100;

    public TimeSpan? Period => LimitType switch
    {
        RateLimitType.PerSecond => TimeSpan.FromSeconds(1),
        RateLimitType.PerMinute => TimeSpan.FromMinutes(1),
        RateLimitType.PerHour => TimeSpan.FromHours(1),
        _ => null,
    };

    public IEnumerable<string> Validate()
    {
        if (LimitType != RateLimitType.Unlimited && MaxOperations < 1)
            yield return $"MaxOperations must be positive, got {MaxOperations}";
    }
}
