using System.Threading.RateLimiting;
using LaneQueue.Contracts;
using Microsoft.Extensions.Options;

namespace LaneQueue.Consumer;

/// <summary>
/// Rate limits on task starts: one for the whole process (<c>Queue:RateLimit</c>) and one per lane
/// (<c>LaneRateLimits:&lt;Lane&gt;</c>). Token buckets from System.Threading.RateLimiting: a token is taken only when
/// a task is about to start, so an idle lane burns nothing and starts with a full bucket.
/// </summary>
internal sealed class TaskRateLimits : IDisposable
{
    readonly RateLimiter? _process;
    readonly Dictionary<SessionLane, RateLimiter> _lanes = [];

    public TaskRateLimits(IOptions<LaneQueueOptions> options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _process = Create(options.Value.Queue.RateLimit);
        foreach (var (lane, limit) in options.Value.LaneRateLimits)
        {
            if (Create(limit) is { } limiter)
                _lanes[lane] = limiter;
        }
    }

    /// <summary>The token bucket of a limit (null when unlimited); <paramref name="queueLimit"/> 0 makes it refuse instead of queueing.</summary>
    internal static TokenBucketRateLimiter? Create(RateLimit limit, int queueLimit = int.MaxValue) => limit.Period is { } period
        ? new TokenBucketRateLimiter(new TokenBucketRateLimiterOptions
        {
            TokenLimit = limit.MaxOperations,
            TokensPerPeriod = limit.MaxOperations,
            ReplenishmentPeriod = period,
            QueueLimit = queueLimit,
            QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
            AutoReplenishment = true,
        })
        : null;

    /// <summary>Whether a start of the lane takes a token (the lane or the process has a rate limit).</summary>
    public bool Limits(SessionLane lane) => _process is not null || _lanes.ContainsKey(lane);

    /// <summary>Waits until both the lane's and the process's limits allow one more task start.</summary>
    public async Task WaitAsync(SessionLane lane, CancellationToken cancellationToken)
    {
        if (_lanes.TryGetValue(lane, out var laneLimiter))
            await AcquireAsync(laneLimiter, cancellationToken);
        if (_process is not null)
            await AcquireAsync(_process, cancellationToken);
    }

    /// <summary>Takes a token now if one is free, without waiting (for tests and diagnostics).</summary>
    public bool TryTake(SessionLane lane) =>
        (!_lanes.TryGetValue(lane, out var laneLimiter) || laneLimiter.AttemptAcquire().IsAcquired)
        && (_process is null || _process.AttemptAcquire().IsAcquired);

    static async Task AcquireAsync(RateLimiter limiter, CancellationToken cancellationToken)
    {
        using var lease = await limiter.AcquireAsync(1, cancellationToken);
        if (!lease.IsAcquired)
            throw new InvalidOperationException("rate limiter refused a lease with an unbounded queue");
    }

    public void Dispose()
    {
        _process?.Dispose();
        foreach (var limiter in _lanes.Values)
            limiter.Dispose();
    }
}
