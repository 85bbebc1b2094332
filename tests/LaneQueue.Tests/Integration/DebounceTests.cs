using System.Diagnostics;
using System.Text;
using System.Text.Json;
using LaneQueue.Tests.Broker;
using RabbitMQ.Client;

namespace LaneQueue.Tests.Integration;

/// <summary>
/// <c>dedup_mode: "debounce"</c>: of the tasks with one key, the last one a consumer saw runs; the earlier ones, when they come
/// due, are answered <c>duplicate</c> naming it. Submitted by the .NET producer and by a raw AMQP client (as any other
/// language's client), over two consumers.
/// </summary>
[Collection(BrokerCollection.Name)]
public class DebounceTests(BrokerFixture broker)
{
    const string Key = "reindex:doc-7";
    static readonly TimeSpan Delay = TimeSpan.FromSeconds(3);
    static readonly TimeSpan Window = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Ten_debounced_submits_from_two_producers_run_only_the_last_and_a_later_burst_runs_once_again()
    {
        await using var fleet = new TestFleet(await broker.CreateVhostAsync());
        await fleet.StartConsumerAsync("debounce-a");
        await fleet.StartConsumerAsync("debounce-b");
        var factory = new ConnectionFactory { Uri = new Uri(fleet.Vhost.Url) };
        await using var connection = await factory.CreateConnectionAsync();
        await using var raw = await connection.CreateChannelAsync(new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true));

        var first = await BurstAsync(fleet, raw, "edit", 10);
        Assert.Equal([first.Ids[^1]], first.Results.Where(r => r.Status == TaskStatuses.Completed).Select(r => r.TaskId));
        var duplicates = first.Results.Where(r => r.Status == TaskStatuses.Duplicate).ToList();
        Assert.Equal(9, duplicates.Count);
        // Each was replaced by a task submitted after it; when the burst is shorter than the delay (it was seen whole before the
        // first came due), by the last one.
        Assert.All(duplicates, d => Assert.True(ReplacedBy(d) is { } later && first.Ids.IndexOf(later) > first.Ids.IndexOf(d.TaskId),
            $"{d.TaskId}: '{d.Error}' (burst {first.BurstDuration.TotalMilliseconds:0} ms)"));
        if (first.BurstDuration < Delay - TimeSpan.FromMilliseconds(300))
            Assert.All(duplicates, d => Assert.Equal($"dedup_key '{Key}' was replaced by task '{first.Ids[^1]}' (debounce); not run", d.Error));
        var ran = first.Results.Single(r => r.Status == TaskStatuses.Completed);
        // The last one waited its own delay from its submit (the others did not hold it back or push it on).
        var startedAfterLastSubmit = ran.StartedAt - first.LastSubmitAt;
        Assert.True(startedAfterLastSubmit >= Delay - TimeSpan.FromMilliseconds(50), $"the last task started {startedAfterLastSubmit.TotalMilliseconds} ms after its submit, before its {Delay.TotalMilliseconds} ms delay");

        // After it ran, a new burst with the key runs again: once, its last task.
        var second = await BurstAsync(fleet, raw, "edit-later", 4);
        Assert.Equal([second.Ids[^1]], second.Results.Where(r => r.Status == TaskStatuses.Completed).Select(r => r.TaskId));
        Assert.Equal(3, second.Results.Count(r => r.Status == TaskStatuses.Duplicate));

        Evidence.Write("debounce-burst", new
        {
            delay_ms = (long)Delay.TotalMilliseconds,
            submits = first.Ids.Count,
            submit_spacing_ms = 100,
            burst_ms = Math.Round(first.BurstDuration.TotalMilliseconds),
            ran = ran.TaskId,
            answered_duplicate = duplicates.Count,
            consumers_that_answered = first.Results.Select(r => r.Consumer).Distinct().Count(),
            last_started_after_its_submit_ms = Math.Round(startedAfterLastSubmit.TotalMilliseconds, 1),
            later_burst = new { submits = second.Ids.Count, ran = second.Results.Count(r => r.Status == TaskStatuses.Completed) },
        }, "10 debounced submits of one key (3 s delay, ~100 ms apart, .NET producer and raw AMQP alternating, two consumers): only the last ran");
    }

    [Fact]
    public async Task A_debounced_task_alone_runs_after_its_delay_and_once_mode_keys_are_not_touched()
    {
        await using var fleet = new TestFleet(await broker.CreateVhostAsync());
        await fleet.StartConsumerAsync("debounce-alone");
        var wait = TimeSpan.FromSeconds(30);
        var submitted = DateTimeOffset.UtcNow;
        var alone = await fleet.Producer.SubmitAndWaitAsync(ExternalTask.Create("alone-1", SessionLane.Query).After(TimeSpan.FromMilliseconds(500)).DebouncedBy("k-alone"), wait);
        Assert.Equal(TaskStatuses.Completed, alone.Status);
        Assert.True(alone.StartedAt - submitted >= TimeSpan.FromMilliseconds(450), "a debounced task sent through its lane still waits its delay");
        // Without a delay it runs at once; a once-mode task with the same key is another key (it is held by its first task only).
        Assert.Equal(TaskStatuses.Completed, (await fleet.Producer.SubmitAndWaitAsync(ExternalTask.Create("alone-2", SessionLane.Query).DebouncedBy("k-alone"), wait)).Status);
        Assert.Equal(TaskStatuses.Completed, (await fleet.Producer.SubmitAndWaitAsync(ExternalTask.Create("once-1", SessionLane.Query).DedupedBy("k-alone"), wait)).Status);
    }

    [Fact]
    public async Task The_cli_submits_with_debounce_and_names_a_missing_key()
    {
        await using var fleet = new TestFleet(await broker.CreateVhostAsync());
        await fleet.StartConsumerAsync("debounce-cli");
        var earlier = await fleet.Producer.WatchResultAsync("cli-d1");
        var (code, output) = await DedupClaimsTests.CliAsync("submit", "--lane", "query", "--id", "cli-d1", "--dedup-key", "report:9", "--debounce", "--delay", "2s", "--url", fleet.Vhost.Url);
        Assert.True(code == 0, output);
        await Task.Delay(200);
        (code, output) = await DedupClaimsTests.CliAsync("submit", "--lane", "query", "--id", "cli-d2", "--dedup-key", "report:9", "--debounce", "--delay", "2s", "--wait", "30", "--url", fleet.Vhost.Url);
        Assert.True(code == 0, output);
        var replaced = await earlier.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(TaskStatuses.Duplicate, replaced.Status);
        Assert.Contains("replaced by task 'cli-d2'", replaced.Error);
        (code, output) = await DedupClaimsTests.CliAsync("submit", "--lane", "query", "--id", "cli-d3", "--debounce", "--url", fleet.Vhost.Url);
        Assert.Equal(2, code);
        Assert.Contains("--debounce needs --dedup-key", output);
        (code, output) = await DedupClaimsTests.CliAsync("submit", "--lane", "query", "--id", "cli-d4", "--dedup-key", "report:9", "--debounce", "--delay", "2m", "--url", fleet.Vhost.Url);
        Assert.NotEqual(0, code);
        Assert.Contains("give dedup_window_ms at least the delay", output);
    }

    /// <summary>The task a <c>duplicate</c> answer of debounce mode names.</summary>
    static string? ReplacedBy(ExternalTaskResult result) =>
        System.Text.RegularExpressions.Regex.Match(result.Error ?? "", "^dedup_key '.*' was replaced by task '(.+)' \\(debounce\\); not run$") is { Success: true } m ? m.Groups[1].Value : null;

    sealed record Burst(List<string> Ids, ExternalTaskResult[] Results, DateTimeOffset LastSubmitAt, TimeSpan BurstDuration);

    /// <summary>
    /// <paramref name="count"/> debounced tasks with <see cref="Key"/>, one every ~100 ms (so their order is defined),
    /// alternating the .NET producer and a raw AMQP publish of the JSON to <c>lanequeue.tasks</c>, the last one raw; their results.
    /// </summary>
    static async Task<Burst> BurstAsync(TestFleet fleet, IChannel raw, string prefix, int count)
    {
        var ids = Enumerable.Range(0, count).Select(i => $"{prefix}-{i}").ToList();
        var watches = new List<Task<ExternalTaskResult>>();
        foreach (var id in ids)
            watches.Add(await fleet.Producer.WatchResultAsync(id));
        var clock = Stopwatch.StartNew();
        var lastSubmitAt = DateTimeOffset.UtcNow;
        for (var i = 0; i < count; i++)
        {
            if (i > 0)
                await Task.Delay(100);
            lastSubmitAt = DateTimeOffset.UtcNow;
            if ((count - 1 - i) % 2 == 1)
            {
                await fleet.Producer.SubmitTaskAsync(ExternalTask.Create(ids[i], SessionLane.Execute, new { edit = i }).After(Delay).DebouncedBy(Key, Window));
            }
            else
            {
                var body = JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, object>
                {
                    ["id"] = ids[i], ["lane"] = "execute", ["payload"] = new { edit = i }, ["delay_ms"] = (long)Delay.TotalMilliseconds,
                    ["dedup_key"] = Key, ["dedup_mode"] = "debounce", ["dedup_window_ms"] = (long)Window.TotalMilliseconds,
                });
                await raw.BasicPublishAsync(BrokerNames.TasksExchange, "execute", mandatory: true,
                    new BasicProperties { ContentType = "application/json", Persistent = true }, body);
            }
        }
        var duration = clock.Elapsed;
        var results = await Task.WhenAll(watches).WaitAsync(TimeSpan.FromSeconds(60));
        return new Burst(ids, results, lastSubmitAt, duration);
    }
}
