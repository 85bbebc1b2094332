using System.Text.Json;
using LaneQueue.Contracts;

namespace LaneQueue.Tests.Unit;

public class ContractsTests
{
    [Fact]
    public void Lanes_are_ordered_highest_first_with_wire_names_and_priorities()
    {
        Assert.Equal(["control", "query", "execute", "generate"], SessionLanes.All.Select(l => l.WireName()));
        Assert.Equal([0, 1, 2, 3], SessionLanes.All.Select(l => l.Priority()));
        Assert.Equal([3, 2, 1, 0], SessionLanes.All.Select(l => (int)l.MessagePriority()));
        Assert.True(SessionLanes.TryParse("execute", out var lane));
        Assert.Equal(SessionLane.Execute, lane);
        Assert.False(SessionLanes.TryParse("Execute", out _));
    }

    [Fact]
    public void Broker_names_are_plain_and_per_lane()
    {
        Assert.Equal("lanequeue.tasks", BrokerNames.TasksExchange);
        Assert.Equal("lanequeue.results", BrokerNames.ResultsExchange);
        Assert.Equal("lanequeue.generate", BrokerNames.LaneQueue(SessionLane.Generate));
        Assert.Equal("lanequeue.query_error", BrokerNames.DeadLetterQueue(BrokerNames.LaneQueue(SessionLane.Query)));
        Assert.Equal("control", BrokerNames.RoutingKey(SessionLane.Control));
        Assert.Equal(4, SessionLanes.All.Select(BrokerNames.LaneQueue).Distinct().Count());
    }

    [Fact]
    public void Queue_config_defaults_match_the_reference()
    {
        var config = new SessionQueueConfig();
        Assert.Equal([2, 4, 2, 1], SessionLanes.All.Select(config.MaxConcurrency));
        Assert.Equal(1000, config.DlqMaxSize);
        Assert.True(config.EnableMetrics); // the one default that differs from the original: metrics are on
        Assert.False(config.EnableAlerts);
        Assert.Null(config.DefaultTimeoutMs);
        Assert.Equal(TaskHandlerMode.Internal, config.Handler(SessionLane.Query).Mode);
        Assert.Equal(60_000, config.Handler(SessionLane.Query).TimeoutMs);
        Assert.Equal(RetryStrategy.Exponential, config.RetryPolicy.Strategy);
        Assert.Equal(3, config.RetryPolicy.MaxRetries);
        Assert.Equal(100, config.RetryPolicy.InitialDelayMs);
        Assert.Equal(BoostStrategy.Standard, config.PriorityBoost.Strategy);
        Assert.Equal(300_000, config.PriorityBoost.DeadlineMs);
        Assert.Equal(RateLimitType.Unlimited, config.RateLimit.LimitType);
        Assert.Empty(config.Validate());
    }

    [Fact]
    public void With_lane_features_turns_on_metrics_alerts_and_a_60s_timeout()
    {
        var config = new SessionQueueConfig { EnableMetrics = false }.WithLaneFeatures();
        Assert.True(config.EnableMetrics && config.EnableAlerts);
        Assert.Equal(1000, config.DlqMaxSize);
        Assert.Equal(60_000, config.DefaultTimeoutMs);
        var sdkName = new SessionQueueConfig().EnableAllFeatures();
        Assert.True(sdkName.EnableMetrics && sdkName.EnableAlerts);
        Assert.True(new SessionQueueConfig { EnableMetrics = false }.WithMetrics().EnableMetrics);
        Assert.Equal(60_000, sdkName.DefaultTimeoutMs);
    }

    [Fact]
    public void Lane_timeouts_override_the_default()
    {
        var config = new SessionQueueConfig { DefaultTimeoutMs = 5000, LaneTimeouts = { [SessionLane.Generate] = 90_000 } };
        Assert.Equal(90_000, config.TimeoutMs(SessionLane.Generate));
        Assert.Equal(5000, config.TimeoutMs(SessionLane.Query));
    }

    [Fact]
    public void Invalid_config_names_the_setting()
    {
        var problems = new SessionQueueConfig { QueryMaxConcurrency = 0, RetryPolicy = new RetryPolicy { MaxRetries = -1 } }.Validate().ToList();
        Assert.Contains(problems, p => p.StartsWith("QueryMaxConcurrency", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("RetryPolicy:MaxRetries", StringComparison.Ordinal));
    }

    [Fact]
    public void Exponential_retry_doubles_and_caps_at_30_seconds()
    {
        var policy = new RetryPolicy { MaxRetries = 12, InitialDelayMs = 100 };
        Assert.Equal([100, 200, 400, 800], Enumerable.Range(1, 4).Select(r => policy.DelayBefore(r)!.Value.TotalMilliseconds));
        Assert.Equal(30_000, policy.DelayBefore(12)!.Value.TotalMilliseconds);
        Assert.Null(policy.DelayBefore(13));
        Assert.Equal(250, new RetryPolicy { Strategy = RetryStrategy.Fixed, FixedDelayMs = 250 }.DelayBefore(2)!.Value.TotalMilliseconds);
        Assert.Null(new RetryPolicy { Strategy = RetryStrategy.None }.DelayBefore(1));
    }

    [Theory]
    [InlineData(BoostStrategy.Standard, 0.20, 0)]
    [InlineData(BoostStrategy.Standard, 0.25, 1)]
    [InlineData(BoostStrategy.Standard, 0.50, 2)]
    [InlineData(BoostStrategy.Standard, 0.75, 3)]
    [InlineData(BoostStrategy.Standard, 0.90, 4)]
    [InlineData(BoostStrategy.Aggressive, 0.10, 0)]
    [InlineData(BoostStrategy.Aggressive, 0.20, 2)]
    [InlineData(BoostStrategy.Aggressive, 0.40, 4)]
    [InlineData(BoostStrategy.Aggressive, 0.60, 6)]
    [InlineData(BoostStrategy.Aggressive, 0.80, 8)]
    [InlineData(BoostStrategy.Disabled, 5.0, 0)]
    public void Boost_levels_follow_the_reference_table(BoostStrategy strategy, double waitedFraction, int levels)
    {
        var boost = new PriorityBoost { Strategy = strategy, DeadlineMs = 10_000 };
        Assert.Equal(levels, boost.LevelsFor(TimeSpan.FromMilliseconds(10_000 * waitedFraction)));
    }

    [Fact]
    public void Past_the_deadline_a_lane_is_top_priority()
    {
        var boost = new PriorityBoost { DeadlineMs = 1000 };
        Assert.Equal(PriorityBoost.TopPriority, boost.LevelsFor(TimeSpan.FromMilliseconds(1000)));
    }

    [Fact]
    public void Result_serializes_with_snake_case_keys()
    {
        var json = JsonSerializer.Serialize(new ExternalTaskResult { TaskId = "t", Lane = SessionLane.Query, Success = true }, TaskJson.Options);
        using var doc = JsonDocument.Parse(json);
        Assert.Equal("t", doc.RootElement.GetProperty("task_id").GetString());
        Assert.Equal("query", doc.RootElement.GetProperty("lane").GetString());
        Assert.True(doc.RootElement.GetProperty("success").GetBoolean());
        Assert.Equal("completed", doc.RootElement.GetProperty("status").GetString());
        Assert.Equal(JsonValueKind.Object, doc.RootElement.GetProperty("result").ValueKind);
    }
}
