using LaneQueue.Contracts;

namespace LaneQueue.Consumer;

public enum BoostStrategy
{
    Standard,
    Aggressive,
    Disabled,
}

/// <summary>
/// Aging against starvation. A lane held back for part of <see cref="DeadlineMs"/> is boosted by some priority
/// levels (standard: 1/2/3/4 at 75/50/25/10 % of the deadline left; aggressive: 2/4/6/8 at 80/60/40/20 %);
/// past the deadline it runs as top priority.
/// </summary>
public sealed record PriorityBoost
{
    /// <summary>Boost that means "past the deadline: above every lane".</summary>
    public const int TopPriority = int.MaxValue;

    public BoostStrategy Strategy { get; init; } = BoostStrategy.Standard;
    public long DeadlineMs { get; init; } = 300_000;

    /// <summary>Levels of boost for a lane that has been waiting <paramref name="waited"/>.</summary>
    public int LevelsFor(TimeSpan waited)
    {
        if (Strategy == BoostStrategy.Disabled || DeadlineMs <= 0)
            return 0;
        var leftFraction = 1.0 - waited.TotalMilliseconds / DeadlineMs;
        if (leftFraction <= 0)
            return TopPriority;
        (double Left, int Levels)[] steps = Strategy == BoostStrategy.Aggressive
            ? [(0.20, 8), (0.40, 6), (0.60, 4), (0.80, 2)]
            : [(0.10, 4), (0.25, 3), (0.50, 2), (0.75, 1)];
        foreach (var (left, levels) in steps)
        {
            if (leftFraction <= left)
                return levels;
        }
        return 0;
    }

    public IEnumerable<string> Validate()
    {
        if (Strategy != BoostStrategy.Disabled && DeadlineMs < 1)
            yield return $"DeadlineMs must be positive, got {DeadlineMs}";
    }
}
