using LaneQueue.Consumer;
using LaneQueue.Contracts;

namespace LaneQueue.Tests.Unit;

public class FleetLimitOptionsTests
{
    static IEnumerable<string> Problems(FleetLaneLimit limit)
    {
        var options = new LaneQueueOptions { RabbitMqUrl = "amqp://localhost/", FleetLimits = { [SessionLane.Generate] = limit } };
        var result = new LaneQueueOptionsValidator().Validate(null, options);
        return result.Failed ? result.Failures : [];
    }

    [Theory]
    [InlineData(0)]
    [InlineData(10_001)]
    public void A_fleet_cap_out_of_range_is_refused_naming_the_setting(int cap)
    {
        var problem = Assert.Single(Problems(new FleetLaneLimit { MaxConcurrency = cap }));
        Assert.StartsWith("LaneQueue:FleetLimits:Generate:MaxConcurrency must be between 1 and 10000", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void A_fleet_rate_needs_positive_operations_and_at_most_10000_tokens()
    {
        Assert.StartsWith("LaneQueue:FleetLimits:Generate:RateLimit:MaxOperations must be positive",
            Assert.Single(Problems(new FleetLaneLimit { RateLimit = new RateLimit { LimitType = RateLimitType.PerSecond, MaxOperations = 0 } })), StringComparison.Ordinal);
        Assert.StartsWith("LaneQueue:FleetLimits:Generate:RateLimit:MaxOperations must be at most 10000",
            Assert.Single(Problems(new FleetLaneLimit { RateLimit = new RateLimit { LimitType = RateLimitType.PerHour, MaxOperations = 20_000 } })), StringComparison.Ordinal);
    }

    [Fact]
    public void Valid_fleet_limits_pass_and_an_empty_one_limits_nothing()
    {
        Assert.Empty(Problems(new FleetLaneLimit { MaxConcurrency = 3, RateLimit = new RateLimit { LimitType = RateLimitType.PerMinute, MaxOperations = 60 } }));
        Assert.True(new FleetLaneLimit().IsEmpty);
        Assert.False(new FleetLaneLimit { MaxConcurrency = 1 }.IsEmpty);
    }

    [Fact]
    public void The_cooling_queue_keeps_a_spent_start_token_for_one_period_and_sends_it_back()
    {
        var cooling = FleetLimitQueues.CoolingArguments(SessionLane.Generate, TimeSpan.FromMinutes(1), quorum: false);
        Assert.Equal(60_000L, cooling["x-message-ttl"]);
        Assert.Equal(FleetLimitQueues.Starts(SessionLane.Generate), cooling["x-dead-letter-routing-key"]);
        var starts = FleetLimitQueues.StartsArguments(SessionLane.Generate, 60, quorum: true);
        Assert.Equal(FleetLimitQueues.Cooling(SessionLane.Generate), starts["x-dead-letter-routing-key"]);
        Assert.Equal("quorum", starts["x-queue-type"]);
    }
}
