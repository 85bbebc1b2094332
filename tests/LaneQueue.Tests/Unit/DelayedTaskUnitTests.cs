using System.Text;
using LaneQueue.Cli;
using LaneQueue.Consumer;
using LaneQueue.Contracts;
using LaneQueue.Producer;

namespace LaneQueue.Tests.Unit;

/// <summary>
/// Delayed tasks without a broker: the wire fields' checks (each bad input refused naming its field), the delay tree's routing
/// keys and hop counts, the producer's and consumer's due times, x-death hops not taken for a broker dead letter, and the
/// CLI's <c>--delay</c> / <c>--at</c>.
/// </summary>
public class DelayedTaskUnitTests
{
    static ExternalTask Parse(string extra) =>
        TaskParser.Parse(Encoding.UTF8.GetBytes($$"""{"id":"t-1","lane":"query","payload":{},{{extra}}}"""));

    [Theory]
    [InlineData("\"delay_ms\":-1", "delay_ms", "-1 must be 0 or more milliseconds")]
    [InlineData("\"delay_ms\":1.5", "delay_ms", "must be a whole number of milliseconds, got 1.5")]
    [InlineData("\"delay_ms\":\"30s\"", "delay_ms", "must be a whole number of milliseconds, got a string")]
    [InlineData("\"delay_ms\":true", "delay_ms", "must be a whole number of milliseconds, got a boolean")]
    [InlineData("\"delay_ms\":{}", "delay_ms", "must be a whole number of milliseconds, got an object")]
    [InlineData("\"delay_ms\":72000001", "delay_ms", "72000001 is over the limit of 72000000 ms (20 hours)")]
    [InlineData("\"delay_ms\":1e20", "delay_ms", "1e20 is over the limit of 72000000 ms (20 hours)")]
    [InlineData("\"delay_ms\":1,\"delay_ms\":2", "delay_ms", "the key 'delay_ms' appears more than once")]
    [InlineData("\"not_before\":\"2026-01-31T12:00:00\"", "not_before", "must be an RFC 3339 timestamp with a time zone")]
    [InlineData("\"not_before\":\"2026-01-31\"", "not_before", "must be an RFC 3339 timestamp with a time zone")]
    [InlineData("\"not_before\":\"tomorrow\"", "not_before", "must be an RFC 3339 timestamp with a time zone")]
    [InlineData("\"not_before\":\"2026-02-30T00:00:00Z\"", "not_before", "must be an RFC 3339 timestamp with a time zone")]
    [InlineData("\"not_before\":1769860800", "not_before", "must be an RFC 3339 timestamp with a time zone")]
    [InlineData("\"not_before\":\"2999-01-01T00:00:00Z\"", "not_before", "is more than 72000000 ms (20 hours) ahead of now")]
    [InlineData("\"delay_ms\":1000,\"not_before\":\"2026-01-31T12:00:00Z\"", "delay_ms", "and not_before are both given")]
    public void Bad_delay_fields_are_refused_naming_the_field(string extra, string field, string problem)
    {
        var refused = Assert.Throws<InvalidTaskException>(() => Parse(extra));
        Assert.Equal(field, refused.Field);
        Assert.Contains(problem, refused.Message, StringComparison.Ordinal);
        Assert.StartsWith(field + ": ", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Good_delay_fields_are_read()
    {
        Assert.Equal(0, Parse("\"delay_ms\":0").DelayMs);
        Assert.Equal(3000, Parse("\"delay_ms\":3e3").DelayMs);
        Assert.Equal(TaskParser.MaxDelayMs, Parse("\"delay_ms\":72000000").DelayMs);
        Assert.Equal(DateTimeOffset.Parse("2026-01-31T12:00:00.5Z", System.Globalization.CultureInfo.InvariantCulture),
            Parse("\"not_before\":\"2026-01-31T13:00:00.5+01:00\"").NotBefore);
        var none = Parse("\"delay_ms\":null,\"not_before\":null");
        Assert.Null(none.DelayMs);
        Assert.Null(none.NotBefore);
    }

    [Fact]
    public void The_producer_refuses_bad_delays_built_in_code()
    {
        var task = ExternalTask.Create("t-1", SessionLane.Query);
        Assert.Equal("delay_ms", Assert.Throws<InvalidTaskException>(() => TaskParser.Validate(task with { DelayMs = -5 })).Field);
        Assert.Equal("delay_ms", Assert.Throws<InvalidTaskException>(() => TaskParser.Validate(task with { DelayMs = 1, NotBefore = DateTimeOffset.UtcNow })).Field);
        Assert.Equal("not_before", Assert.Throws<InvalidTaskException>(() => TaskParser.Validate(task.At(DateTimeOffset.UtcNow.AddHours(21)))).Field);
        TaskParser.Validate(task.After(TimeSpan.FromHours(20)));
        TaskParser.Validate(task.At(DateTimeOffset.UtcNow.AddHours(19)));
    }

    [Fact]
    public void A_delayed_task_serializes_its_fields_and_reads_back()
    {
        var at = DateTimeOffset.Parse("2026-01-31T12:00:00Z", System.Globalization.CultureInfo.InvariantCulture);
        var json = Encoding.UTF8.GetString(TaskJson.Serialize(ExternalTask.Create("t-1", SessionLane.Query).At(at)));
        Assert.Contains("\"not_before\":\"2026-01-31T12:00:00+00:00\"", json, StringComparison.Ordinal);
        Assert.DoesNotContain("delay_ms", json, StringComparison.Ordinal);
        Assert.Equal(at, TaskParser.Parse(Encoding.UTF8.GetBytes(json)).NotBefore);
        var delayed = TaskParser.Parse(TaskJson.Serialize(ExternalTask.Create("t-2", SessionLane.Query).After(TimeSpan.FromSeconds(1.5))));
        Assert.Equal(1500, delayed.DelayMs);
    }

    [Theory]
    [InlineData(0, 0, "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.query")]
    [InlineData(10, 1, "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.query")] // 10 + 40 ms margin = 1 unit of 50 ms
    [InlineData(100, 2, "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.1.query")] // 140 ms: rounded up to 3 units, never early
    [InlineData(3000, 5, "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.1.1.1.0.1.query")] // 61 units = 111101
    [InlineData(72_000_000, 10, "1.0.1.0.1.1.1.1.1.1.0.0.1.0.0.0.0.0.0.0.1.query")] // 1,440,001 units
    public void A_delay_is_its_binary_digits_in_base_units_highest_level_first(long ms, int hops, string key)
    {
        var delay = TimeSpan.FromMilliseconds(ms);
        Assert.Equal(key, DelayTopology.RoutingKey(delay, SessionLane.Query));
        Assert.Equal(hops, DelayTopology.Hops(delay));
        Assert.True(DelayTopology.Units(delay) * DelayTopology.Base.TotalMilliseconds >= ms + (ms > 0 ? DelayTopology.Margin.TotalMilliseconds : 0));
        Assert.True(DelayTopology.Units(delay) * DelayTopology.Base.TotalMilliseconds < ms + DelayTopology.Margin.TotalMilliseconds + DelayTopology.Base.TotalMilliseconds);
    }

    [Fact]
    public void The_levels_cover_the_longest_delay_and_each_level_waits_twice_the_one_below()
    {
        Assert.True(((1L << DelayTopology.Levels) - 1) * (long)DelayTopology.Base.TotalMilliseconds >= TaskParser.MaxDelayMs + DelayTopology.Margin.TotalMilliseconds);
        for (var level = 1; level < DelayTopology.Levels; level++)
            Assert.Equal(2 * DelayTopology.TtlMs(level - 1), DelayTopology.TtlMs(level));
        Assert.Equal(BrokerNames.DelayDeliver, DelayTopology.QueueArguments(0)["x-dead-letter-exchange"]);
        Assert.Equal(BrokerNames.DelayLevel(4), DelayTopology.QueueArguments(5)["x-dead-letter-exchange"]);
        // Quorum queues that dead-letter at least once: a hop a stopping or dying broker cannot drop (DelayTreeCrashTests).
        Assert.Equal("quorum", DelayTopology.QueueArguments(3)["x-queue-type"]);
        Assert.Equal("at-least-once", DelayTopology.QueueArguments(3)["x-dead-letter-strategy"]);
        Assert.Equal("reject-publish", DelayTopology.QueueArguments(3)["x-overflow"]);
        Assert.Equal("lanequeue.delay.03.quorum", BrokerNames.DelayQueue(3));
        Assert.Equal("lanequeue.delay.20", DelayTopology.EntryExchange);
    }

    [Fact]
    public void Due_times_delay_ms_from_the_submit_not_before_as_given_the_tree_header_wins()
    {
        var now = DateTimeOffset.UtcNow;
        var task = ExternalTask.Create("t-1", SessionLane.Query) with { CreatedAt = now.AddMinutes(-1) };
        Assert.Null(LaneQueueProducer.DelayedUntil(task, now));
        Assert.Equal((now.AddSeconds(3), TimeSpan.FromSeconds(3)), LaneQueueProducer.DelayedUntil(task.After(TimeSpan.FromSeconds(3)), now));
        Assert.Null(LaneQueueProducer.DelayedUntil(task.At(now.AddSeconds(-1)), now)); // not_before passed: straight to the lane
        Assert.Null(LaneQueueProducer.DelayedUntil(task.After(TimeSpan.Zero), now));

        // The consumer: without the header, created_at + delay_ms (or not_before); with it, the header.
        Assert.Null(LaneTaskConsumer.DueAt(task, null));
        Assert.Equal(now.AddSeconds(-30), LaneTaskConsumer.DueAt(task.After(TimeSpan.FromSeconds(30)), null)); // created a minute ago
        var properties = DelayTopology.Entering(new RabbitMQ.Client.BasicProperties
        {
            Headers = new Dictionary<string, object?> { ["x-death"] = new List<object>(), ["x-first-death-queue"] = "lanequeue.delay.03", ["lane"] = "query" },
        }, now.AddSeconds(-2));
        Assert.False(properties.Headers!.ContainsKey("x-death"));
        Assert.False(properties.Headers.ContainsKey("x-first-death-queue"));
        Assert.Equal("query", properties.Headers["lane"]);
        Assert.Equal(DateTimeOffset.FromUnixTimeMilliseconds(now.AddSeconds(-2).ToUnixTimeMilliseconds()),
            LaneTaskConsumer.DueAt(task.After(TimeSpan.FromHours(1)), properties));
    }

    static Dictionary<string, object?> Death(string queue, string reason) => new()
    {
        ["queue"] = Encoding.UTF8.GetBytes(queue),
        ["reason"] = Encoding.UTF8.GetBytes(reason),
        ["count"] = 1L,
    };

    [Fact]
    public void A_delayed_tasks_hops_through_the_tree_are_not_a_broker_dead_letter()
    {
        var hops = new Dictionary<string, object?>
        {
            ["x-death"] = new List<object> { Death("lanequeue.delay.01", "expired"), Death("lanequeue.delay.04", "expired") },
        };
        Assert.Null(BrokerDeath.Read(hops));
        Assert.Null(BrokerDeadLetterAnswers.Explain(hops, deliveryLimit: 3));

        // The same task later dead-lettered by the broker from its lane: that death counts, not the hops.
        var poisoned = new Dictionary<string, object?>
        {
            ["x-death"] = new List<object> { Death("lanequeue.delay.01", "expired"), Death("lanequeue.query", "delivery_limit"), Death("lanequeue.delay.04", "expired") },
        };
        Assert.Equal(new BrokerDeath("delivery_limit", "lanequeue.query"), BrokerDeath.Read(poisoned));
        Assert.StartsWith("delivery_limit:", BrokerDeadLetterAnswers.Explain(poisoned, deliveryLimit: 3)!.Value.Error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("30s", null, 30_000L)]
    [InlineData("500ms", null, 500L)]
    [InlineData("5m", null, 300_000L)]
    [InlineData("2h", null, 7_200_000L)]
    [InlineData("0s", null, 0L)]
    [InlineData("20h", null, 72_000_000L)]
    public void The_cli_reads_delay(string delay, string? at, long expected)
    {
        var (delayMs, notBefore, problem) = ProducerCli.DelayOptions(delay, at);
        Assert.Null(problem);
        Assert.Null(notBefore);
        Assert.Equal(expected, delayMs);
    }

    [Fact]
    public void The_cli_reads_at_and_refuses_what_is_not_a_delay()
    {
        var (delayMs, notBefore, problem) = ProducerCli.DelayOptions(null, "2026-01-31T13:00:00+01:00");
        Assert.Null(problem);
        Assert.Null(delayMs);
        Assert.Equal(DateTimeOffset.Parse("2026-01-31T12:00:00Z", System.Globalization.CultureInfo.InvariantCulture), notBefore);
        Assert.Equal((null, null, null), ProducerCli.DelayOptions(null, null));

        Assert.StartsWith("--delay and --at are both given", ProducerCli.DelayOptions("1s", "2026-01-31T12:00:00Z").Problem, StringComparison.Ordinal);
        foreach (var bad in new[] { "30", "1.5s", "-1s", "30 sec", "1d", "" })
            Assert.StartsWith($"--delay '{bad}' must be", ProducerCli.DelayOptions(bad, null).Problem, StringComparison.Ordinal);
        Assert.StartsWith("--delay '21h' is over the limit", ProducerCli.DelayOptions("21h", null).Problem, StringComparison.Ordinal);
        foreach (var bad in new[] { "2026-01-31T12:00:00", "2026-01-31", "now", "2026-01-31 12:00:00Z" })
            Assert.StartsWith($"--at '{bad}' must be an RFC 3339 time", ProducerCli.DelayOptions(null, bad).Problem, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_cli_refuses_bad_delay_options_with_exit_code_2_before_connecting()
    {
        var error = new StringWriter();
        var code = await ProducerCli.RunAsync(["submit", "--lane", "query", "--delay", "soon", "--url", "amqp://guest:guest@127.0.0.1:1/"], new System.CommandLine.InvocationConfiguration { Output = new StringWriter(), Error = error });
        Assert.Equal(ProducerCli.InvalidInput, code);
        Assert.Contains("--delay 'soon' must be", error.ToString(), StringComparison.Ordinal);
    }
}
