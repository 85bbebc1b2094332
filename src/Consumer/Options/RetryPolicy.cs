using LaneQueue.Contracts;

namespace LaneQueue.Consumer;

public enum RetryStrategy
{
    Exponential,
    Fixed,
    None,
}

/// <summary>How a failed task is retried: exponential doubles per attempt from <see cref="InitialDelayMs"/>, capped at 30 s.</summary>
public sealed record RetryPolicy
{
    public const long MaxDelayMs = 30_000;

    public RetryStrategy Strategy { get; init; } = RetryStrategy.Exponential;
    public int MaxRetries { get; init; } = 3;
    public long InitialDelayMs { get; init; } = 100;
    public long FixedDelayMs { get; init; } = 1000;

    /// <summary>Delay before retry number <paramref name="retry"/> (1-based), or null when no retry is left.</summary>
    public TimeSpan? DelayBefore(int retry)
    {
        if (Strategy == RetryStrategy.None || retry < 1 || retry > MaxRetries)
            return null;
        var ms = Strategy == RetryStrategy.Fixed
            ? FixedDelayMs
            : InitialDelayMs * Math.Pow(2, Math.Min(retry - 1, 30));
        return TimeSpan.FromMilliseconds(Math.Min(ms, MaxDelayMs));
    }

    public IEnumerable<string> Validate()
    {
        if (MaxRetries is < 0 or > 100)
            yield return $"MaxRetries must be between 0 and 100, got {MaxRetries}";
        if (InitialDelayMs < 0)
            yield return $"InitialDelayMs must not be negative, got {InitialDelayMs}";
        if (FixedDelayMs < 0)
            yield return $"FixedDelayMs must not be negative, got {FixedDelayMs}";
    }
}
