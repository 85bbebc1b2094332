using LaneQueue.Tests.Broker;
using Microsoft.Extensions.Options;

namespace LaneQueue.Tests.Integration;

/// <summary>The broker-kept claims behind <c>dedup_key</c>: one winner per key and window across consumers, whatever the timing.</summary>
[Collection(BrokerCollection.Name)]
public class DedupClaimsTests(BrokerFixture broker)
{
    static BrokerPublisher Publisher(string url, string name) =>
        new(Options.Create(new LaneQueueOptions { RabbitMqUrl = url, ConsumerName = name }));

    [Fact]
    public async Task Racing_claims_from_two_consumers_have_one_winner_and_the_key_is_free_again_after_its_window()
    {
        await using var vhost = await broker.CreateVhostAsync();
        await using var one = Publisher(vhost.Url, "dedup-1");
        await using var two = Publisher(vhost.Url, "dedup-2");
        var claims = new[] { new DedupClaims(one), new DedupClaims(two) };

        // 100 tasks with one key, from two consumers at once.
        var answers = await Task.WhenAll(Enumerable.Range(0, 100).Select(i => claims[i % 2].ClaimAsync("order-42", 3000, $"t-{i}", CancellationToken.None)));
        var winners = Enumerable.Range(0, 100).Where(i => answers[i] is null).ToList();
        Assert.Single(winners);
        var winner = $"t-{winners[0]}";
        Assert.All(answers.Where(a => a is not null), a => Assert.True(a == winner || a == "", $"answered '{a}', the winner is {winner}"));
        Assert.True(answers.Count(a => a == winner) >= 90, "the losers are told who won");

        // The winner delivered again (its consumer died) still holds it; another key is independent.
        Assert.Null(await claims[1].ClaimAsync("order-42", 3000, winner, CancellationToken.None));
        Assert.Null(await claims[0].ClaimAsync("order-43", 3000, "t-other", CancellationToken.None));
        // The same key with another window is another claim.
        Assert.Null(await claims[0].ClaimAsync("order-42", 60_000, "t-long", CancellationToken.None));

        // After the window the key runs again.
        await TestVhost.EventuallyAsync(async () => await claims[0].ClaimAsync("order-42", 3000, "t-later", CancellationToken.None) is null,
            "the key is free after its 3 s window", 30);
    }

    [Fact]
    public async Task A_second_publish_of_the_holders_id_with_another_copy_token_is_held_while_the_same_publish_delivered_again_runs()
    {
        await using var vhost = await broker.CreateVhostAsync();
        await using var one = Publisher(vhost.Url, "copy-1");
        await using var two = Publisher(vhost.Url, "copy-2");
        var (first, other) = (new DedupClaims(one), new DedupClaims(two));
        const string Id = "tick:20261205T120000Z";

        Assert.Null(await first.ClaimAsync(Id, 60_000, Id, "copy-a", CancellationToken.None));
        // The same publish delivered again (a redelivery, a retry, a return to its lane keep the token), on any consumer: runs.
        Assert.Null(await other.ClaimAsync(Id, 60_000, Id, "copy-a", CancellationToken.None));
        // No token on it: the holder delivered again as far as anyone can tell (at least once rather than lost).
        Assert.Null(await other.ClaimAsync(Id, 60_000, Id, null, CancellationToken.None));
        // A second publish of the id (a due time fired again after a hand-over): another token, told the holder.
        Assert.Equal(Id, await other.ClaimAsync(Id, 60_000, Id, "copy-b", CancellationToken.None));
    }

    [Fact]
    public async Task A_schedule_firing_published_twice_runs_once_even_on_a_consumer_that_never_saw_the_first_copy()
    {
        await using var fleet = new TestFleet(await broker.CreateVhostAsync());
        await fleet.StartConsumerAsync("firing-a");
        await using var raw = await RawClient.ConnectAsync(fleet.Vhost.Url);
        var schedule = new TaskSchedule { Id = "tick", IntervalMs = 1000, Lane = SessionLane.Query, CommandType = "echo" };
        var task = ScheduleFirings.TaskFor(schedule, DateTimeOffset.UtcNow, DateTimeOffset.UtcNow);

        // The firing runs on consumer a; then a is gone and consumer b, whose ledger never saw the id, gets a second copy
        // (the monitor died between the firing's confirm and its record, its successor fired the due time again).
        await raw.PublishAsync("query", TaskJson.Serialize(task), ScheduleFirer.FiringProperties(task));
        Assert.Equal(TaskStatuses.Completed, (await raw.ResultAsync(task.Id)).GetProperty("status").GetString());
        await fleet.Hosts[0].StopQuietlyAsync();
        await fleet.StartConsumerAsync("firing-b");
        await raw.PublishAsync("query", TaskJson.Serialize(task), ScheduleFirer.FiringProperties(task));

        await TestVhost.EventuallyAsync(() => Task.FromResult(raw.Results[task.Id].GetProperty("status").GetString() != TaskStatuses.Completed),
            "the second copy's answer", 30);
        var second = raw.Results[task.Id];
        Assert.Equal(TaskStatuses.Duplicate, second.GetProperty("status").GetString());
        Assert.Equal("firing-b", second.GetProperty("consumer").GetString());
        Assert.Contains($"is held by task '{task.Id}'", second.GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task One_key_submitted_100_times_from_two_producers_runs_once_per_window_across_two_consumers()
    {
        await using var fleet = new TestFleet(await broker.CreateVhostAsync());
        await fleet.StartConsumerAsync("dedup-a");
        await fleet.StartConsumerAsync("dedup-b");
        await using var second = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = fleet.Vhost.Url });
        var producers = new ILaneQueueProducer[] { fleet.Producer, second };
        var wait = TimeSpan.FromSeconds(60);

        var results = await Task.WhenAll(Enumerable.Range(0, 100).Select(i => producers[i % 2].SubmitAndWaitAsync(
            ExternalTask.Create($"charge-{i}", SessionLane.Execute, new { i }).DedupedBy("charge:order-42", TimeSpan.FromSeconds(5)), wait)));

        var ran = results.Where(r => r.Status == TaskStatuses.Completed).ToList();
        Assert.Single(ran);
        var duplicates = results.Where(r => r.Status == TaskStatuses.Duplicate).ToList();
        Assert.Equal(99, duplicates.Count);
        Assert.All(duplicates, d => Assert.Contains("dedup_key 'charge:order-42' is held by task", d.Error));
        Assert.True(duplicates.Count(d => d.Error!.Contains($"'{ran[0].TaskId}'", StringComparison.Ordinal)) >= 90, "the duplicates name the task that ran");
        Assert.Equal(2, results.Select(r => r.Consumer).Distinct().Count()); // both consumers answered

        // The window ends 5 s after the first came due: the key runs again, once.
        await Task.Delay(TimeSpan.FromSeconds(5.5));
        var again = await Task.WhenAll(Enumerable.Range(0, 4).Select(i => producers[i % 2].SubmitAndWaitAsync(
            ExternalTask.Create($"charge-later-{i}", SessionLane.Execute, new { i }).DedupedBy("charge:order-42", TimeSpan.FromSeconds(5)), wait)));
        Assert.Single(again, r => r.Status == TaskStatuses.Completed);
        Assert.Equal(3, again.Count(r => r.Status == TaskStatuses.Duplicate));
    }

    [Fact]
    public async Task The_cli_submits_with_a_dedup_key_and_names_a_bad_window()
    {
        await using var fleet = new TestFleet(await broker.CreateVhostAsync());
        await fleet.StartConsumerAsync("dedup-cli");
        var (code, output) = await CliAsync("submit", "--lane", "query", "--id", "cli-1", "--dedup-key", "report:7", "--dedup-window", "30s", "--wait", "30", "--url", fleet.Vhost.Url);
        Assert.True(code == 0, output);
        (code, output) = await CliAsync("submit", "--lane", "query", "--id", "cli-2", "--dedup-key", "report:7", "--dedup-window", "30s", "--wait", "30", "--url", fleet.Vhost.Url);
        Assert.Equal(5, code);
        Assert.Contains("duplicate", output);
        Assert.Contains("held by task", output);
        Assert.Contains("cli-1", output);
        (code, output) = await CliAsync("submit", "--lane", "query", "--id", "cli-3", "--dedup-key", "report:7", "--dedup-window", "25h", "--url", fleet.Vhost.Url);
        Assert.Equal(2, code);
        Assert.Contains("--dedup-window '25h' must be from 1 ms to 24 hours", output);
        (code, output) = await CliAsync("submit", "--lane", "query", "--id", "cli-4", "--dedup-window", "5s", "--url", fleet.Vhost.Url);
        Assert.Equal(2, code);
        Assert.Contains("--dedup-window needs --dedup-key", output);
    }

    /// <summary>Runs the CLI's producer commands in process: exit code and everything written.</summary>
    internal static async Task<(int Code, string Output)> CliAsync(params string[] args)
    {
        var output = new StringWriter();
        var code = await LaneQueue.Cli.ProducerCli.RunAsync(args, new System.CommandLine.InvocationConfiguration { Output = output, Error = output });
        return (code, output.ToString());
    }
}
