using System.Text.Json;
using LaneQueue.Consumer;
using LaneQueue.Contracts;
using LaneQueue.Producer;
using LaneQueue.Tests.Broker;
using RabbitMQ.Client;

namespace LaneQueue.Tests.Integration;

/// <summary>
/// Crash suspects (wire contract §7): tasks that carry crashes in <c>x-lanequeue-crashes</c> run one at a time on a
/// process, and one with more crashes than the delivery limit is dead-lettered by the consumer with the broker's words.
/// The poison test (<c>PoisonTaskTests</c>) shows the effect on real crashes; this one pins the rules on one consumer.
/// </summary>
[Collection(BrokerCollection.Name)]
public sealed class CrashSuspectTests(BrokerFixture broker)
{
    const int Limit = 3;

    static BasicProperties Suspect(ExternalTask task, long crashes) =>
        TaskMessage.Properties(task, new Dictionary<string, object?> { [BrokerNames.CrashesHeader] = crashes });

    [Fact]
    public async Task Suspects_run_one_at_a_time_beside_fresh_tasks_and_one_over_the_limit_is_dead_lettered_with_one_answer()
    {
        await using var vhost = await broker.CreateVhostAsync();
        var consumer = await ConsumerHost.StartAsync(vhost.Url, o =>
        {
            o.QuorumQueues = true;
            o.DeliveryLimit = Limit;
        }, name: "suspects");
        try
        {
            await RunAsync(vhost.Url);
        }
        finally
        {
            await consumer.StopQuietlyAsync();
        }
    }

    static async Task RunAsync(string url)
    {
        await using var client = await RawClient.ConnectAsync(url);
        var suspects = Enumerable.Range(1, 3).Select(i => ExternalTask.Create($"suspect-{i}", SessionLane.Query, new { ms = 400 }, "sleep")).ToList();
        var fresh = Enumerable.Range(1, 2).Select(i => ExternalTask.Create($"fresh-{i}", SessionLane.Execute, new { ms = 400 }, "sleep")).ToList();
        var over = ExternalTask.Create("over-the-limit", SessionLane.Execute, new { ms = 1 }, "sleep");
        foreach (var task in suspects)
            await client.PublishAsync(task.Lane.WireName(), TaskJson.Serialize(task), Suspect(task, 1));
        foreach (var task in fresh)
            await client.PublishAsync(task.Lane.WireName(), TaskJson.Serialize(task), TaskMessage.Properties(task));
        await client.PublishAsync(over.Lane.WireName(), TaskJson.Serialize(over), Suspect(over, Limit + 1));

        var results = new Dictionary<string, JsonElement>();
        foreach (var task in suspects.Concat(fresh).Append(over))
            results[task.Id] = await client.ResultAsync(task.Id, 60);

        // Over the limit: dead-lettered without running, answered once with the broker's delivery_limit words.
        Assert.Equal(TaskStatuses.Failed, results[over.Id].GetProperty("status").GetString());
        Assert.Equal(CrashSuspects.DeliveryLimitError(Limit + 1), results[over.Id].GetProperty("error").GetString());
        var letter = Assert.Single(await client.DeadLettersAsync(SessionLane.Execute, 1));
        Assert.Equal(CrashSuspects.DeliveryLimitError(Limit + 1), letter.Reason);

        // Every suspect and fresh task completed; the suspects (query: room for 4 at once) never two at a time, the others
        // parked in the hold meanwhile and run later.
        foreach (var task in suspects.Concat(fresh))
            Assert.Equal(TaskStatuses.Completed, results[task.Id].GetProperty("status").GetString());
        var runs = suspects.Select(t => (Id: t.Id, Start: results[t.Id].GetProperty("started_at").GetDateTimeOffset(), End: results[t.Id].GetProperty("finished_at").GetDateTimeOffset()))
            .OrderBy(r => r.Start).ToList();
        for (var i = 1; i < runs.Count; i++)
            Assert.True(runs[i].Start >= runs[i - 1].End, $"{runs[i].Id} started at {runs[i].Start:O} while {runs[i - 1].Id} ran until {runs[i - 1].End:O}");
    }
}
