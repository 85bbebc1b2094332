using LaneQueue.Consumer;
using LaneQueue.Contracts;

namespace LaneQueue.Tests.Unit;

public class GatePolicyTests
{
    static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    static GatePolicy Policy(int resumeAfter = 2, BoostStrategy strategy = BoostStrategy.Disabled, long deadlineMs = 1000) =>
        new(new GateOptions { PauseAtReady = 1, ResumeAfterClearChecks = resumeAfter }, new PriorityBoost { Strategy = strategy, DeadlineMs = deadlineMs });

    static GateSnapshot At(double ms, long control = 0, long query = 0, long execute = 0, long generate = 0, DateTimeOffset?[]? lastStart = null) =>
        new([control, query, execute, generate], lastStart ?? new DateTimeOffset?[4], T0.AddMilliseconds(ms));

    [Fact]
    public void Ready_query_pauses_execute_and_generate_but_not_control_or_query()
    {
        var policy = Policy();
        var changes = policy.Evaluate(At(0, query: 3, generate: 100));
        Assert.Equal([SessionLane.Execute, SessionLane.Generate], changes.Where(c => c.Pause).Select(c => c.Lane));
        Assert.False(policy.IsPaused(SessionLane.Control));
        Assert.False(policy.IsPaused(SessionLane.Query));
        Assert.Contains("query has 3 ready", changes[0].Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Ready_control_pauses_every_other_lane()
    {
        var policy = Policy();
        policy.Evaluate(At(0, control: 1));
        Assert.Equal([false, true, true, true], SessionLanes.All.Select(policy.IsPaused));
    }

    [Fact]
    public void Own_backlog_never_pauses_a_lane()
    {
        var policy = Policy();
        Assert.Empty(policy.Evaluate(At(0, generate: 10_000)));
    }

    [Fact]
    public void Paused_lane_resumes_only_after_enough_clear_checks()
    {
        var policy = Policy(resumeAfter: 3);
        policy.Evaluate(At(0, query: 1));
        Assert.Empty(policy.Evaluate(At(100)));
        Assert.Empty(policy.Evaluate(At(200)));
        var resumed = policy.Evaluate(At(300));
        Assert.Equal([SessionLane.Execute, SessionLane.Generate], resumed.Select(c => c.Lane));
        Assert.All(resumed, c => Assert.False(c.Pause));
        Assert.All(resumed, c => Assert.Equal(("higher lanes drained", false), (c.Reason, c.Boosted)));
    }

    [Fact]
    public void A_blip_of_higher_work_restarts_the_clear_count()
    {
        var policy = Policy(resumeAfter: 2);
        policy.Evaluate(At(0, query: 1));
        policy.Evaluate(At(100));
        policy.Evaluate(At(200, query: 1));
        Assert.Empty(policy.Evaluate(At(300)));
        Assert.True(policy.IsPaused(SessionLane.Generate));
        Assert.Single(policy.Evaluate(At(400, generate: 0)), c => c.Lane == SessionLane.Generate);
    }

    [Fact]
    public void Without_boost_a_flooded_lane_waits_forever()
    {
        var policy = Policy(strategy: BoostStrategy.Disabled, deadlineMs: 1000);
        policy.Evaluate(At(0, query: 50, generate: 1));
        for (var ms = 100; ms <= 10_000; ms += 100)
            Assert.Empty(policy.Evaluate(At(ms, query: 50, generate: 1)));
    }

    [Fact]
    public void Standard_boost_lifts_generate_above_query_at_half_the_deadline()
    {
        var policy = Policy(strategy: BoostStrategy.Standard, deadlineMs: 1000);
        policy.Evaluate(At(0, query: 50, generate: 1));
        Assert.Empty(policy.Evaluate(At(300, query: 50, generate: 1)));
        Assert.Equal(1, policy.BoostLevels(SessionLane.Generate, At(300, query: 50, generate: 1)));
        var changes = policy.Evaluate(At(500, query: 50, generate: 1));
        Assert.Contains(changes, c => c is { Lane: SessionLane.Generate, Pause: false });
    }

    [Fact]
    public void Boosted_lane_still_yields_to_control_until_the_deadline()
    {
        var policy = Policy(strategy: BoostStrategy.Standard, deadlineMs: 1000);
        policy.Evaluate(At(0, control: 5, generate: 1));
        Assert.DoesNotContain(policy.Evaluate(At(600, control: 5, generate: 1)), c => c.Lane == SessionLane.Generate);
        var changes = policy.Evaluate(At(1000, control: 5, generate: 1));
        Assert.Contains(changes, c => c is { Lane: SessionLane.Generate, Pause: false, Reason: "boost deadline reached", Boosted: true });
    }

    [Fact]
    public void Lane_admitted_past_its_deadline_stays_open_until_it_starts_a_task_then_waits_again()
    {
        var policy = Policy(strategy: BoostStrategy.Standard, deadlineMs: 1000);
        policy.Evaluate(At(0, control: 5, generate: 3));
        policy.Evaluate(At(1000, control: 5, generate: 3));
        Assert.False(policy.IsPaused(SessionLane.Generate));
        Assert.DoesNotContain(policy.Evaluate(At(1100, control: 5, generate: 3)), c => c.Lane == SessionLane.Generate);
        Assert.False(policy.IsPaused(SessionLane.Generate));

        DateTimeOffset?[] started = [null, null, null, T0.AddMilliseconds(1150)];
        var changes = policy.Evaluate(At(1200, control: 5, generate: 2, lastStart: started));
        Assert.Contains(changes, c => c is { Lane: SessionLane.Generate, Pause: true });
        Assert.Equal(0, policy.BoostLevels(SessionLane.Generate, At(1300, control: 5, generate: 2, lastStart: started)));
    }

    [Fact]
    public void Aggressive_boost_acts_sooner_than_standard()
    {
        var standard = Policy(strategy: BoostStrategy.Standard);
        var aggressive = Policy(strategy: BoostStrategy.Aggressive);
        standard.Evaluate(At(0, query: 9, generate: 1));
        aggressive.Evaluate(At(0, query: 9, generate: 1));
        Assert.Equal(0, standard.BoostLevels(SessionLane.Generate, At(200, query: 9, generate: 1)));
        Assert.Equal(2, aggressive.BoostLevels(SessionLane.Generate, At(200, query: 9, generate: 1)));
    }
}
