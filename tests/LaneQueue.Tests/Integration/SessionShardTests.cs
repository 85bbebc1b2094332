using LaneQueue.Consumer;
using LaneQueue.Contracts;
using LaneQueue.Producer;
using LaneQueue.Tests.Broker;
using Xunit.Abstractions;

namespace LaneQueue.Tests.Integration;

/// <summary>
/// Session shard queues (<see cref="LaneQueueOptions.SessionShards"/>) behave as parts of their lane: a task published to a
/// shard by any client runs, bad input there is dead-lettered to the lane's one <c>_error</c> queue, an operator's pause
/// stops every shard of the lane, and a consumer that does not take a shard that exists refuses to start.
/// </summary>
[Collection(BrokerCollection.Name)]
public sealed class SessionShardTests(BrokerFixture broker, ITestOutputHelper output)
{
    const int Shards = 4;

    static void Sharded(LaneQueueOptions options) => options.SessionShards[SessionLane.Generate] = Shards;

    static IEnumerable<string> ShardQueues => Enumerable.Range(0, Shards).Select(shard => SessionShards.Queue(SessionLane.Generate, shard));

    [Fact]
    public async Task A_task_published_to_a_shard_runs_and_bad_input_there_goes_to_the_lanes_dead_letter_queue()
    {
        await using var vhost = await broker.CreateVhostAsync();
        var consumer = await ConsumerHost.StartAsync(vhost.Url, Sharded);
        try
        {
            await using var raw = await RawClient.ConnectAsync(vhost.Url);
            var key = SessionShards.RoutingKeyFor(SessionLane.Generate, "conversation-7", Shards);
            Assert.NotEqual("generate", key);
            await raw.PublishAsync(key, """{"id":"in-a-shard","lane":"generate","session_id":"conversation-7","payload":{"n":1}}""");
            Assert.Equal("completed", (await raw.ResultAsync("in-a-shard")).GetProperty("status").GetString());

            await raw.PublishAsync("generate.s01", "not json at all");
            var letter = Assert.Single(await raw.DeadLettersAsync(SessionLane.Generate, 1));
            output.WriteLine(letter.Reason);
            Assert.Contains("not valid JSON", letter.Reason, StringComparison.Ordinal);
            Assert.All(ShardQueues, queue => Assert.DoesNotContain(queue + "_error", letter.Reason, StringComparison.Ordinal));
            Assert.Null(await vhost.QueueAsync(SessionShards.Queue(SessionLane.Generate, 1) + "_error"));

            // The consumer keeps running: the next task of that shard runs.
            await raw.PublishAsync("generate.s01", """{"id":"after-bad-input","lane":"generate","payload":{"n":2}}""");
            Assert.Equal("completed", (await raw.ResultAsync("after-bad-input")).GetProperty("status").GetString());
        }
        finally
        {
            await consumer.StopQuietlyAsync();
        }
    }

    [Fact]
    public async Task A_pause_stops_every_shard_of_the_lane_and_a_resume_starts_them_again()
    {
        await using var vhost = await broker.CreateVhostAsync();
        var consumer = await ConsumerHost.StartAsync(vhost.Url, Sharded);
        try
        {
            var options = new ProducerOptions { RabbitMqUrl = vhost.Url };
            options.SessionShards[SessionLane.Generate] = Shards;
            await using var producer = await LaneQueueProducer.ConnectAsync(options);
            foreach (var queue in ShardQueues.Prepend(BrokerNames.LaneQueue(SessionLane.Generate)))
                await TestVhost.EventuallyAsync(async () => await vhost.ConsumersAsync(queue) == 1u, $"{queue} taken");

            await producer.PauseLaneAsync(SessionLane.Generate);
            foreach (var queue in ShardQueues.Prepend(BrokerNames.LaneQueue(SessionLane.Generate)))
                await TestVhost.EventuallyAsync(async () => await vhost.ConsumersAsync(queue) == 0u, $"{queue} left while the lane is paused", 30);
            var task = ExternalTask.Create("paused-session-task", SessionLane.Generate, new { n = 1 }) with { SessionId = "conversation-9" };
            var result = await producer.WatchResultAsync(task.Id);
            await producer.SubmitTaskAsync(task);
            var shard = SessionShards.Queue(SessionLane.Generate, SessionShards.Of("conversation-9", Shards));
            await TestVhost.EventuallyAsync(async () => await vhost.ReadyAsync(shard) == 1u, $"the task waits in {shard}");
            await Task.Delay(500);
            Assert.False(result.IsCompleted, "a task of a paused lane's shard must not run");

            await producer.ResumeLaneAsync(SessionLane.Generate);
            Assert.Equal(TaskStatuses.Completed, (await result.WaitAsync(TimeSpan.FromSeconds(60))).Status);
        }
        finally
        {
            await consumer.StopQuietlyAsync();
        }
    }

    [Fact]
    public async Task A_consumer_that_does_not_take_an_existing_shard_refuses_to_start_naming_the_setting()
    {
        await using var vhost = await broker.CreateVhostAsync();
        var options = new ProducerOptions { RabbitMqUrl = vhost.Url };
        options.SessionShards[SessionLane.Generate] = Shards;
        await using (await LaneQueueProducer.ConnectAsync(options))
        {
        }

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => ConsumerHost.StartAsync(vhost.Url, o => o.SessionShards[SessionLane.Generate] = 2));
        output.WriteLine(error.Message);
        Assert.IsType<TopologyMismatchException>(error.InnerException);
        Assert.Contains("LaneQueue:SessionShards:generate does not match the broker: 2 here, but queue 'lanequeue.generate.s02' exists", error.Message, StringComparison.Ordinal);
        Assert.Equal(0u, await vhost.ConsumersAsync(BrokerNames.LaneQueue(SessionLane.Generate)));
    }
}
