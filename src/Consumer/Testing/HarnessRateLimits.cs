using System.Threading.RateLimiting;
using LaneQueue.Contracts;

namespace LaneQueue.Consumer.Testing;

/// <summary>
/// The rate limits of <see cref="TaskRateLimits"/> (same token buckets: <c>Queue:RateLimit</c> for the process,
/// <c>LaneRateLimits</c> per lane) for the harness's dispatcher, which must know whether a task may start without waiting:
/// it looks at both buckets first and takes from both only when both have a token, so a lane token is never lost to a
/// refused process token.
/// </summary>
internal sealed class HarnessRateLimits : IDisposable
{
    readonly TokenBucketRateLimiter? _process;
    readonly Dictionary<SessionLane, TokenBucketRateLimiter> _lanes = [];

    public HarnessRateLimits(LaneQueueOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _process = Create(options.Queue.RateLimit);
        foreach (var (lane, limit) in options.LaneRateLimits)
        {
            if (Create(limit) is { } limiter)
                _lanes[lane] = limiter;
        }
    }

    static TokenBucketRateLimiter? Create(RateLimit limit) => TaskRateLimits.Create(limit, queueLimit: 0);

    /// <summary>Whether both the lane's and the process's limits allow one more start now.</summary>
    public bool CanStart(SessionLane lane) =>
        HasToken(_lanes.GetValueOrDefault(lane)) && HasToken(_process);

    /// <summary>Takes the tokens of one start; call only after <see cref="CanStart"/> said yes (from the same single caller).</summary>
    public void Take(SessionLane lane)
    {
        using var laneLease = _lanes.GetValueOrDefault(lane)?.AttemptAcquire();
        using var processLease = _process?.AttemptAcquire();
    }

    static bool HasToken(TokenBucketRateLimiter? limiter) =>
        limiter is null || limiter.GetStatistics() is not { } statistics || statistics.CurrentAvailablePermits >= 1;

    public void Dispose()
    {
        _process?.Dispose();
        foreach (var limiter in _lanes.Values)
            limiter.Dispose();
    }
}
