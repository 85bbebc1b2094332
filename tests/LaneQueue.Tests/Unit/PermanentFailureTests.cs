using System.Text.Json;
using LaneQueue.Consumer.Testing;

namespace LaneQueue.Tests.Unit;

/// <summary>
/// The split between failures worth retrying and failures that can never succeed, in the broker-free harness (which runs
/// the consumer's rule, <c>TaskErrors.IsPermanent</c>): the second kind ends at once with a <c>failed</c> result, attempts 1,
/// an error in the <c>field: problem</c> form, one <c>command.dead_lettered</c> event and one dead letter. The same cases run
/// against a broker in <c>Integration/TotalContractTests</c>.
/// </summary>
public class PermanentFailureTests
{
    static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    static LaneQueueTestHarness Harness(Action<LaneQueueConsumerBuilder> handlers)
    {
        var harness = new LaneQueueTestHarness(o =>
            o.Queue = o.Queue with { RetryPolicy = new RetryPolicy { Strategy = RetryStrategy.Fixed, MaxRetries = 3, FixedDelayMs = 10 } });
        harness.Consumer.AddBuiltInHandlers();
        handlers(harness.Consumer);
        harness.Start();
        return harness;
    }

    static async Task<ExternalTaskResult> EndsOnceNotRetried(LaneQueueTestHarness harness, ExternalTask task, string error)
    {
        var result = await harness.SubmitAndWaitAsync(task, Wait);
        await harness.WhenIdleAsync(Wait);
        Assert.Equal(TaskStatuses.Failed, result.Status);
        Assert.False(result.Success);
        Assert.Equal(error, result.Error);
        Assert.Equal(1, result.Attempts);
        Assert.Single(harness.Results, r => r.TaskId == task.Id);
        Assert.Single(harness.Started, s => s.TaskId == task.Id);
        Assert.Equal([TaskEvent.Started, TaskEvent.Failed, TaskEvent.DeadLettered], harness.Events.Where(e => e.TaskId == task.Id).Select(e => e.Event));
        var letter = Assert.Single(harness.DeadLetters, d => d.TaskId == task.Id);
        Assert.StartsWith(error + " (failed, not retried: it cannot succeed)", letter.Reason, StringComparison.Ordinal);
        return result;
    }

    [Fact]
    public async Task Sleep_with_a_non_integer_ms_is_refused_as_a_payload_problem_and_not_retried()
    {
        await using var harness = Harness(_ => { });
        await EndsOnceNotRetried(harness, ExternalTask.Create("sleep-abc", SessionLane.Execute, new { ms = "abc" }, "sleep"),
            "payload: ms must be a whole number of milliseconds from 0 to 2147483647, got \"abc\"");
    }

    [Theory]
    [InlineData("""{"ms":-5}""", "-5")]
    [InlineData("""{"ms":1.5}""", "1.5")]
    [InlineData("""{"ms":1e10}""", "1e10")]
    public async Task Sleep_with_an_ms_out_of_range_is_refused_the_same_way(string payload, string shown)
    {
        await using var harness = Harness(_ => { });
        await EndsOnceNotRetried(harness, ExternalTask.Create("sleep-bad", SessionLane.Execute, payload, "sleep"),
            $"payload: ms must be a whole number of milliseconds from 0 to 2147483647, got {shown}");
    }

    [Fact]
    public async Task Sleep_with_a_valid_or_absent_ms_still_runs()
    {
        await using var harness = Harness(_ => { });
        Assert.Equal(5, (await harness.SubmitAndWaitAsync(ExternalTask.Create("s1", SessionLane.Execute, new { ms = 5 }, "sleep"), Wait)).Result.GetProperty("slept_ms").GetInt32());
        Assert.Equal(0, (await harness.SubmitAndWaitAsync(ExternalTask.Create("s2", SessionLane.Execute, new { }, "sleep"), Wait)).Result.GetProperty("slept_ms").GetInt32());
    }

    [Fact]
    public async Task A_handler_signals_a_permanent_failure_with_PermanentTaskException()
    {
        await using var harness = Harness(c => c
            .AddHandler("lookup", _ => throw new PermanentTaskException("customer 42 does not exist"))
            .AddHandler("named", _ => throw new PermanentTaskException("session_id", "belongs to a closed account")));
        await EndsOnceNotRetried(harness, ExternalTask.Create("p1", SessionLane.Query, null, "lookup"), "payload: customer 42 does not exist");
        await EndsOnceNotRetried(harness, ExternalTask.Create("p2", SessionLane.Query, null, "named"), "session_id: belongs to a closed account");
    }

    [Fact]
    public async Task A_result_that_cannot_be_written_as_JSON_fails_the_run_as_result_not_retried()
    {
        await using var harness = Harness(c => c.AddHandler("broken", _ => Task.FromResult<object?>(TaskJson.ParseElement("""{"s":"\ud800"}"""))));
        await EndsOnceNotRetried(harness, ExternalTask.Create("r1", SessionLane.Query, null, "broken"),
            @"result: the handler returned JSON holding an unpaired surrogate escape such as \ud800, which cannot be written again");
    }

    [Fact]
    public async Task Any_other_exception_is_still_retried_per_the_policy()
    {
        await using var harness = Harness(c => c.AddHandler("flaky", _ => throw new InvalidOperationException("flaky")));
        var result = await harness.SubmitAndWaitAsync(ExternalTask.Create("f1", SessionLane.Query, null, "flaky"), Wait);
        await harness.WhenIdleAsync(Wait);
        Assert.Equal(4, result.Attempts);
        Assert.Equal("flaky", result.Error);
        Assert.Equal(4, harness.Started.Count);
    }

    [Fact]
    public void PermanentTaskException_reads_field_colon_problem()
    {
        Assert.Equal("payload: nope", new PermanentTaskException("nope").Message);
        Assert.Equal("payload", new PermanentTaskException("nope", new JsonException("inner")).Field);
        var named = new PermanentTaskException("created_at", "too old");
        Assert.Equal(("created_at", "too old", "created_at: too old"), (named.Field, named.Problem, named.Message));
    }
}
