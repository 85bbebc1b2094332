using System.Text;
using LaneQueue.Consumer.Testing;
using Microsoft.Extensions.Time.Testing;

namespace LaneQueue.Tests.Unit;

/// <summary><c>dedup_mode</c>: the parser's checks and words, and debounce on the test harness's clock.</summary>
public class DebounceModeTests
{
    static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    static InvalidTaskException Rejected(string fields) =>
        Assert.Throws<InvalidTaskException>(() => TaskParser.Parse(Encoding.UTF8.GetBytes($$"""{"id": "t-1", "lane": "query", "payload": {}, {{fields}}}""")));

    [Fact]
    public void The_parser_reads_the_mode_and_names_what_to_fix()
    {
        var task = TaskParser.Parse(Encoding.UTF8.GetBytes("""{"id": "t-1", "lane": "query", "payload": {}, "dedup_key": "k", "dedup_mode": "debounce", "delay_ms": 5000}"""));
        Assert.True(task.Debounced);
        Assert.Equal("debounce", task.DedupMode);
        Assert.False(TaskParser.Parse(Encoding.UTF8.GetBytes("""{"id": "t-1", "lane": "query", "payload": {}, "dedup_key": "k", "dedup_mode": "once"}""")).Debounced);

        var bad = Rejected("\"dedup_key\": \"k\", \"dedup_mode\": \"last\"");
        Assert.Equal("dedup_mode", bad.Field);
        Assert.Contains("'last' is not a mode; expected \"once\" (the first runs) or \"debounce\" (the last runs)", bad.Message);
        Assert.Contains("the mode belongs to a key", Rejected("\"dedup_mode\": \"debounce\"").Message);
        Assert.Contains("must be a string, got", Rejected("\"dedup_key\": \"k\", \"dedup_mode\": 1").Message);
        var shortWindow = Rejected("\"dedup_key\": \"k\", \"dedup_mode\": \"debounce\", \"delay_ms\": 90000");
        Assert.Equal("dedup_window_ms", shortWindow.Field);
        Assert.Contains("absent (60000 ms) is shorter than delay_ms 90000 ms", shortWindow.Message);
        // Once mode takes any delay with the default window (the window counts from when the first task comes due).
        TaskParser.Parse(Encoding.UTF8.GetBytes("""{"id": "t-1", "lane": "query", "payload": {}, "dedup_key": "k", "delay_ms": 90000}"""));
    }

    [Fact]
    public void A_debounced_task_built_in_code_travels_with_its_mode()
    {
        var task = ExternalTask.Create("t-1", SessionLane.Query).After(TimeSpan.FromSeconds(5)).DebouncedBy("reindex:7", TimeSpan.FromSeconds(10));
        var json = Encoding.UTF8.GetString(TaskJson.Serialize(task));
        Assert.Contains("\"dedup_mode\":\"debounce\"", json);
        Assert.Equal(task.DedupMode, TaskParser.Parse(Encoding.UTF8.GetBytes(json)).DedupMode);
        Assert.DoesNotContain("dedup_mode", Encoding.UTF8.GetString(TaskJson.Serialize(task.DedupedBy("reindex:7"))), StringComparison.Ordinal); // DedupedBy: the default mode again
        Assert.Throws<InvalidTaskException>(() => TaskParser.Validate(ExternalTask.Create("t-2", SessionLane.Query) with { DedupMode = TaskParser.DedupDebounce }));
    }

    [Fact]
    public async Task On_the_harness_clock_only_the_last_debounced_task_runs_and_a_later_burst_runs_again()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var harness = new LaneQueueTestHarness(time: time);
        harness.Start();
        var waits = new List<Task<ExternalTaskResult>>();
        foreach (var i in Enumerable.Range(1, 4))
        {
            waits.Add(harness.SubmitAndWaitAsync(ExternalTask.Create($"edit-{i}", SessionLane.Execute, new { i }).After(TimeSpan.FromSeconds(5)).DebouncedBy("reindex:7"), Wait));
            time.Advance(TimeSpan.FromSeconds(1));
        }
        time.Advance(TimeSpan.FromSeconds(5));
        var results = await Task.WhenAll(waits);
        Assert.Equal([TaskStatuses.Duplicate, TaskStatuses.Duplicate, TaskStatuses.Duplicate, TaskStatuses.Completed], results.Select(r => r.Status));
        Assert.Equal("dedup_key 'reindex:7' was replaced by task 'edit-4' (debounce); not run", results[0].Error);

        var again = harness.SubmitAndWaitAsync(ExternalTask.Create("edit-5", SessionLane.Execute, new { }).After(TimeSpan.FromSeconds(5)).DebouncedBy("reindex:7"), Wait);
        time.Advance(TimeSpan.FromSeconds(5));
        Assert.Equal(TaskStatuses.Completed, (await again).Status);
    }
}
