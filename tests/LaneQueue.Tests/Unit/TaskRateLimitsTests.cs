using LaneQueue.Consumer;
using LaneQueue.Contracts;
using Microsoft.Extensions.Options;

namespace LaneQueue.Tests.Unit;

public class TaskRateLimitsTests
{
    static TaskRateLimits Limits(RateLimit process, Dictionary<SessionLane, RateLimit>? lanes = null) =>
        new(Options.Create(new LaneQueueOptions { Queue = new SessionQueueConfig { RateLimit = process }, LaneRateLimits = lanes ?? [] }));

    [Fact]
    public void Unlimited_by_default()
    {
        using var limits = Limits(new RateLimit());
        Assert.All(Enumerable.Range(0, 10_000), _ => Assert.True(limits.TryTake(SessionLane.Query)));
    }

    [Fact]
    public void Per_lane_limit_allows_max_operations_per_period_for_that_lane_only()
    {
        using var limits = Limits(new RateLimit(), new() { [SessionLane.Generate] = new RateLimit { LimitType = RateLimitType.PerHour, MaxOperations = 3 } });
        Assert.Equal(3, Enumerable.Range(0, 10).Count(_ => limits.TryTake(SessionLane.Generate)));
        Assert.Equal(10, Enumerable.Range(0, 10).Count(_ => limits.TryTake(SessionLane.Query)));
    }

    [Fact]
    public void Process_limit_is_shared_by_all_lanes()
    {
        using var limits = Limits(new RateLimit { LimitType = RateLimitType.PerMinute, MaxOperations = 4 });
        Assert.Equal(4, SessionLanes.All.Concat(SessionLanes.All).Count(limits.TryTake));
    }

    [Fact]
    public async Task An_idle_lane_keeps_its_tokens_and_a_waiting_start_is_released_by_the_next_period()
    {
        using var limits = Limits(new RateLimit { LimitType = RateLimitType.PerSecond, MaxOperations = 2 });
        await Task.Delay(1200); // idle: nothing is burnt, the bucket stays full at 2
        Assert.True(limits.TryTake(SessionLane.Query));
        Assert.True(limits.TryTake(SessionLane.Query));
        await limits.WaitAsync(SessionLane.Query, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task A_start_over_the_limit_waits()
    {
        using var limits = Limits(new RateLimit { LimitType = RateLimitType.PerHour, MaxOperations = 2 });
        Assert.True(limits.TryTake(SessionLane.Query));
        Assert.True(limits.TryTake(SessionLane.Query));
        using var cancel = new CancellationTokenSource();
        var third = limits.WaitAsync(SessionLane.Query, cancel.Token);
        await Task.Delay(200);
        Assert.False(third.IsCompleted);
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => third);
    }
}
