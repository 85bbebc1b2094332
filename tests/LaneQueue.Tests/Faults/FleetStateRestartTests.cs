using LaneQueue.Tests.Broker;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace LaneQueue.Tests.Faults;

/// <summary>A lane paused by an operator stays paused across a restart of the whole broker, for a consumer that starts after it.</summary>
[Collection(FaultCollection.Name)]
public sealed class FleetStateRestartTests(FaultBrokerFixture broker, ITestOutputHelper output) : FaultTest(broker, "lq-fleet-state")
{
    [Fact]
    public async Task A_pause_survives_a_broker_restart_for_a_consumer_started_afterwards()
    {
        var url = Node.Url(Vhost);
        var before = await ConsumerHost.StartAsync(url, name: "before");
        await using (var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = url }))
        {
            await producer.PauseLaneAsync(SessionLane.Generate);
            await TestVhost.EventuallyAsync(() => Task.FromResult(before.IsPaused(SessionLane.Generate)), "generate paused before the restart");
        }
        await before.StopQuietlyAsync();

        // A graceful stop. (A kill -9 within seconds of a fresh node's first stream declaration can leave every stream
        // "down" after the restart on RabbitMQ 3.10.8: the stream coordinator's state was not on disk yet.)
        output.WriteLine($"{DateTime.UtcNow:HH:mm:ss} stopping the broker");
        await Node.StopAsync();
        await Node.StartAgainAsync();
        output.WriteLine($"{DateTime.UtcNow:HH:mm:ss} broker back");
        // Only the lasting state may carry the pause: the day-long command log is gone too. (Streams come back a moment after
        // the node: until then the broker answers "home node ... is down or inaccessible".)
        await using (var connection = await BrokerConnection.ConnectAsync(url, "fleet-state-restart-test"))
        {
            await TestVhost.EventuallyAsync(async () =>
            {
                try
                {
                    await using var channel = await connection.CreateChannelAsync();
                    await channel.QueueDeleteAsync(BrokerNames.FleetLog, ifUnused: false, ifEmpty: false);
                    return true;
                }
                catch (RabbitMQ.Client.Exceptions.OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == 404)
                {
                    return false;
                }
            }, "the fleet log stream back after the restart (to delete it)");
        }

        var after = await ConsumerHost.StartAsync(url, name: "after");
        try
        {
            await TestVhost.EventuallyAsync(() => Task.FromResult(after.IsPaused(SessionLane.Generate)), "generate paused on the consumer started after the restart");
            Assert.True(after.Services.GetRequiredService<LaneEndpoints>().IsPaused(SessionLane.Generate));
            Assert.False(after.IsPaused(SessionLane.Query));

            // And it runs generate again once resumed.
            await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = url });
            var result = await producer.WatchResultAsync("after-restart");
            await producer.SubmitTaskAsync(ExternalTask.Create("after-restart", SessionLane.Generate));
            await producer.ResumeLaneAsync(SessionLane.Generate);
            Assert.True((await result.WaitAsync(TimeSpan.FromSeconds(60))).Success);
        }
        finally
        {
            await after.StopQuietlyAsync();
        }
    }
}
