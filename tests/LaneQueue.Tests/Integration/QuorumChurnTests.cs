using LaneQueue.Consumer;
using LaneQueue.Contracts;
using LaneQueue.Producer;
using LaneQueue.Tests.Broker;
using LaneQueue.Tests.Faults;
using Microsoft.Extensions.Hosting;
using Xunit.Abstractions;

namespace LaneQueue.Tests.Integration;

/// <summary>
/// Holding never churns: on quorum lane queues with a delivery limit of 2 (a third delivery of any message dead-letters it), a
/// flood over all four lanes keeps the scheduler switching between lanes on two consumers, and no task is dead-lettered: the
/// gate orders the slots and never hands a delivery back to the broker. The second run adds a lane paused and resumed by an
/// operator halfway through, which does stop an endpoint: its deliveries go back to their lane as new messages (published,
/// confirmed, acked), so it must not cost a delivery either. A regression guard: the scheduler before 1.0 passed it too
/// (tried at ab87702, with delivery limits 2 and 1), since it also put held deliveries back as new messages.
/// </summary>
[Collection(BrokerCollection.Name)]
public sealed class QuorumChurnTests(BrokerFixture broker, ITestOutputHelper output)
{
    const int Tasks = 2000;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_four_lane_flood_on_quorum_lanes_with_delivery_limit_2_dead_letters_nothing_and_completes_every_task_once(bool operatorPause)
    {
        await using var vhost = await broker.CreateVhostAsync();
        var fleet = new List<IHost>();
        try
        {
            for (var i = 0; i < 2; i++)
            {
                fleet.Add(await ConsumerHost.StartAsync(vhost.Url, o =>
                {
                    o.QuorumQueues = true;
                    o.DeliveryLimit = 2;
                }, name: $"churn-{i}"));
            }
            await using var tally = await ResultTally.StartAsync(vhost.Url, quorum: true);
            await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = vhost.Url, QuorumQueues = true, DeliveryLimit = 2 });
            var tasks = Enumerable.Range(0, Tasks)
                .Select(i => ExternalTask.Create($"churn-{i}", SessionLanes.All[i % 4], new { ms = 2 + i % 7 }, "sleep")).ToList();
            foreach (var chunk in tasks.Chunk(100))
            {
                await Task.WhenAll(chunk.Select(t => producer.SubmitTaskAsync(t)));
                foreach (var t in chunk)
                    tally.Accepted(t.Id);
                if (operatorPause && chunk[0].Id == "churn-1000")
                {
                    await producer.PauseLaneAsync(SessionLane.Query);
                    await Task.Delay(500);
                    await producer.ResumeLaneAsync(SessionLane.Query);
                }
            }
            var counts = await tally.WaitForAllAsync(TimeSpan.FromMinutes(4), output.WriteLine);
            var deadLetters = 0u;
            await using (var client = await RawClient.ConnectAsync(vhost.Url))
            {
                foreach (var lane in SessionLanes.All)
                    deadLetters += await client.CountAsync(TestVhost.DeadLetters(lane));
            }
            var summary = $"{Tasks} tasks over 4 lanes on quorum lanes (x-delivery-limit 2), 2 consumers{(operatorPause ? ", query paused and resumed halfway" : "")}: {counts}; dead letters {deadLetters}";
            output.WriteLine(summary);
            Evidence.Write($"quorum-churn{(operatorPause ? "-operator-pause" : "")}", new { Tasks, DeliveryLimit = 2, operatorPause, counts.Completed, counts.Lost, counts.Duplicated, DeadLetters = deadLetters }, summary);
            Assert.Equal(0u, deadLetters);
            Assert.True(counts.Completed == Tasks && counts.Lost == 0 && counts.Duplicated == 0, $"{summary}\n{tally.DescribeMissing()}");
        }
        finally
        {
            foreach (var host in fleet)
                await host.StopQuietlyAsync();
        }
    }
}
