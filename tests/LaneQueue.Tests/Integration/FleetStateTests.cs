using LaneQueue.Tests.Broker;

namespace LaneQueue.Tests.Integration;

/// <summary>Pauses and handler modes last until an operator changes them, whatever the day-long command log has kept.</summary>
[Collection(BrokerCollection.Name)]
public class FleetStateTests(BrokerFixture broker)
{
    [Fact]
    public async Task A_pause_reaches_a_consumer_started_after_the_command_log_lost_it_and_a_later_resume_wins()
    {
        await using var vhost = await broker.CreateVhostAsync();
        var first = await ConsumerHost.StartAsync(vhost.Url, name: "first");
        await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = vhost.Url });
        await producer.PauseLaneAsync(SessionLane.Generate);
        await producer.SetLaneHandlerAsync(SessionLane.Execute, TaskHandlerMode.Hybrid);
        await TestVhost.EventuallyAsync(() => Task.FromResult(first.IsPaused(SessionLane.Generate)), "generate paused on the first consumer");
        await first.StopQuietlyAsync();

        // The day-long log's retention passed: it no longer holds the pause (the next consumer declares it again, empty).
        await ForgetCommandLogAsync(vhost.Url);
        var late = await ConsumerHost.StartAsync(vhost.Url, name: "late");
        try
        {
            await TestVhost.EventuallyAsync(() => Task.FromResult(late.IsPaused(SessionLane.Generate)), "generate paused on the consumer that started later");
            Assert.Equal(0u, await vhost.ConsumersAsync(BrokerNames.LaneQueue(SessionLane.Generate)));
            var result = await producer.WatchResultAsync("after-the-pause");
            await producer.SubmitTaskAsync(ExternalTask.Create("after-the-pause", SessionLane.Generate, new { n = 1 }));
            var events = new List<TaskEvent>();
            await using (await producer.WatchEventsAsync(e => { lock (events) events.Add(e); return Task.CompletedTask; }, "command.external_pending.#"))
            {
                var hybrid = await producer.SubmitAndWaitAsync(ExternalTask.Create("hybrid-1", SessionLane.Execute, new { n = 2 }), TimeSpan.FromSeconds(60));
                Assert.True(hybrid.Success);
                await TestVhost.EventuallyAsync(() => Task.FromResult(events.Any(e => e.TaskId == "hybrid-1")), "the hybrid lane announced its task");
            }
            Assert.False(result.IsCompleted);

            await producer.ResumeLaneAsync(SessionLane.Generate);
            Assert.True((await result.WaitAsync(TimeSpan.FromSeconds(60))).Success);
        }
        finally
        {
            await late.StopQuietlyAsync();
        }

        // The resume is lasting state too: a consumer started after the log lost it again runs the lane.
        await ForgetCommandLogAsync(vhost.Url);
        var later = await ConsumerHost.StartAsync(vhost.Url, name: "later");
        try
        {
            var done = await producer.SubmitAndWaitAsync(ExternalTask.Create("after-the-resume", SessionLane.Generate, new { n = 3 }), TimeSpan.FromSeconds(60));
            Assert.True(done.Success);
            Assert.False(later.IsPaused(SessionLane.Generate));
        }
        finally
        {
            await later.StopQuietlyAsync();
        }
    }

    static async Task ForgetCommandLogAsync(string url)
    {
        await using var connection = await BrokerConnection.ConnectAsync(url, "fleet-state-test");
        await using var channel = await connection.CreateChannelAsync();
        await channel.QueueDeleteAsync(BrokerNames.FleetLog, ifUnused: false, ifEmpty: false);
    }
}
