using LaneQueue.Tests.Broker;

namespace LaneQueue.Tests.Integration;

/// <summary>Reading the fleet's stats is read-only: it never touches a waiting task.</summary>
[Collection(BrokerCollection.Name)]
public class StatsTests(BrokerFixture broker)
{
    [Fact]
    public async Task Reading_stats_often_never_uses_up_a_paused_quorum_lanes_delivery_limit()
    {
        const int limit = 3;
        await using var vhost = await broker.CreateVhostAsync();
        var consumer = await ConsumerHost.StartAsync(vhost.Url, o =>
        {
            o.QuorumQueues = true;
            o.DeliveryLimit = limit;
        });
        try
        {
            await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = vhost.Url, QuorumQueues = true, DeliveryLimit = limit });
            await producer.PauseLaneAsync(SessionLane.Generate);
            await TestVhost.EventuallyAsync(() => Task.FromResult(consumer.IsPaused(SessionLane.Generate)), "the generate lane paused");
            var result = await producer.WatchResultAsync("waits-1");
            await producer.SubmitTaskAsync(ExternalTask.Create("waits-1", SessionLane.Generate, new { n = 1 }));

            // Three times the delivery limit: a peek (basic.get + requeue) per read would have dead-lettered the task.
            for (var read = 0; read < 3 * limit; read++)
            {
                var stats = await producer.ReadStatsAsync(TimeSpan.FromMilliseconds(50));
                Assert.Equal(1, stats.Lanes.Single(l => l.Lane == "generate").Pending);
            }
            Assert.Equal(0u, await vhost.ReadyAsync(TestVhost.DeadLetters(SessionLane.Generate)));
            Assert.False(result.IsCompleted);

            await producer.ResumeLaneAsync(SessionLane.Generate);
            var done = await result.WaitAsync(TimeSpan.FromSeconds(60));
            Assert.True(done.Success, done.Error);
            Assert.Equal(1, done.Attempts);
        }
        finally
        {
            await consumer.StopQuietlyAsync();
        }
    }

    [Fact]
    public async Task Stats_count_the_tasks_a_consumer_holds_waiting_for_a_slot_beside_those_ready_at_the_broker()
    {
        // Generate runs one at a time here and the endpoint holds four: of five tasks, one runs, three wait in the consumer
        // (delivered, so not ready at the broker) and one is ready at the broker. "pending" alone said 1 of the 4 waiting.
        await using var vhost = await broker.CreateVhostAsync();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var consumer = await ConsumerHost.StartAsync(vhost.Url, o =>
        {
            o.HeartbeatIntervalMs = 200;
            o.Queue = o.Queue with { GenerateMaxConcurrency = 1 };
        }, h => h.AddHandler("hold", async context =>
        {
            await release.Task.WaitAsync(context.CancellationToken);
            return null;
        }));
        try
        {
            await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = vhost.Url });
            foreach (var i in Enumerable.Range(1, 5))
                await producer.SubmitTaskAsync(ExternalTask.Create($"held-{i}", SessionLane.Generate, null, "hold"));
            QueueStats? stats = null;
            await TestVhost.EventuallyAsync(async () =>
            {
                stats = await producer.ReadStatsAsync(TimeSpan.FromMilliseconds(500));
                var generate = stats.Lanes.Single(l => l.Lane == "generate");
                return (generate.Active, generate.Waiting, generate.Pending) == (1, 3, 1);
            }, "generate: 1 running, 3 held by the consumer, 1 ready at the broker");
            Assert.Equal(3, stats!.TotalWaiting);
            Assert.All(stats.Lanes.Where(l => l.Lane != "generate"), lane => Assert.Equal(0, lane.Waiting));
            Assert.Contains("totals: pending 1 (and 3 held by consumers)", LaneQueue.Cli.FleetCli.Table(stats), StringComparison.Ordinal);

            release.TrySetResult();
            await TestVhost.EventuallyAsync(async () =>
                (await producer.ReadStatsAsync(TimeSpan.FromMilliseconds(500))).Lanes.Single(l => l.Lane == "generate") is { Waiting: 0, Pending: 0, Active: 0 },
                "every generate task done");
        }
        finally
        {
            release.TrySetResult();
            await consumer.StopQuietlyAsync();
        }
    }

    [Fact]
    public async Task Stats_of_a_fleet_with_no_consumer_read_zero_counts_from_the_history_and_the_connection_stays_usable()
    {
        // What CI's `lanequeue stats` against a fresh vhost does: the history holds nothing but the readers' markers. Reading
        // it used to ack the marker after signalling the end, racing the reader channel's close: a 504 that closed the
        // whole connection ("expected 'channel.open'").
        await using var vhost = await broker.CreateVhostAsync();
        await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = vhost.Url });
        for (var read = 0; read < 10; read++)
        {
            var stats = await producer.ReadStatsAsync(TimeSpan.FromMilliseconds(10));
            Assert.Equal("history", stats.CountsFrom);
            Assert.Empty(stats.Consumers);
            Assert.All(stats.Lanes, lane => Assert.Equal((0L, 0L, 0L, 0L), (lane.Pending ?? -1, lane.Completed, lane.Failed, lane.DeadLettered)));
            Assert.Empty((await producer.GetTaskHistoryAsync($"nothing-{read}")).Events);
        }
        await producer.SubmitTaskAsync(ExternalTask.Create("after-reads", SessionLane.Query));
        Assert.Equal(1u, await vhost.ReadyAsync(BrokerNames.LaneQueue(SessionLane.Query)));
    }
}
