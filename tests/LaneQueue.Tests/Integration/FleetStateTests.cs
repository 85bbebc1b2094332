using LaneQueue.Tests.Broker;
using RabbitMQ.Client;

namespace LaneQueue.Tests.Integration;

/// <summary>
/// Pauses and handler modes last until an operator changes them, whatever the command log has kept. The log's retention is
/// a day; here a vhost policy shortens it to 1 s (small segments, so the broker drops them soon), and the test waits until
/// the broker itself has removed the pause from the log before it starts the next consumer.
/// </summary>
[Collection(BrokerCollection.Name)]
public class FleetStateTests(BrokerFixture broker)
{
    [Fact]
    public async Task A_pause_reaches_a_consumer_started_after_the_command_log_lost_it_and_a_later_resume_wins()
    {
        await using var vhost = await broker.CreateVhostAsync();
        await ShortenCommandLogRetentionAsync(vhost.Name);
        var first = await ConsumerHost.StartAsync(vhost.Url, name: "first");
        await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = vhost.Url });
        await producer.PauseLaneAsync(SessionLane.Generate);
        await producer.SetLaneHandlerAsync(SessionLane.Execute, TaskHandlerMode.Hybrid);
        await TestVhost.EventuallyAsync(() => Task.FromResult(first.IsPaused(SessionLane.Generate)), "generate paused on the first consumer");
        await first.StopQuietlyAsync();

        // The log's retention passed: it no longer holds the pause.
        await WaitForRetentionToDropTheCommandsAsync(vhost.Url);
        var late = await ConsumerHost.StartAsync(vhost.Url, name: "late");
        try
        {
            await TestVhost.EventuallyAsync(() => Task.FromResult(late.IsPaused(SessionLane.Generate)), "generate paused on the consumer that started later");
            // The endpoint stops just after the lane is marked paused: its consumer leaves the queue a moment later.
            var generate = BrokerNames.LaneQueue(SessionLane.Generate);
            if (!await TestVhost.WithinAsync(async () => await vhost.ConsumersAsync(generate) == 0u, 30))
                Assert.Fail($"timed out after 30 s waiting for the paused generate lane to have no consumer; {await vhost.ConsumersOnAsync(generate)}");
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
        await WaitForRetentionToDropTheCommandsAsync(vhost.Url);
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

    /// <summary>A policy on the test's vhost: the command log keeps 1 s, in segments of 1,000 bytes (retention drops whole segments).</summary>
    async Task ShortenCommandLogRetentionAsync(string vhost)
    {
        using var response = await broker.Management.PutAsync($"api/policies/{Uri.EscapeDataString(vhost)}/short-command-log",
            System.Net.Http.Json.JsonContent.Create(new Dictionary<string, object>
            {
                ["pattern"] = "^" + System.Text.RegularExpressions.Regex.Escape(BrokerNames.FleetLog) + "$",
                ["definition"] = new Dictionary<string, object> { ["max-age"] = "1s", ["stream-max-segment-size-bytes"] = 1000 },
                ["apply-to"] = "queues",
            }));
        response.EnsureSuccessStatusCode();
    }

    /// <summary>
    /// Appends filler to the command log (straight to the stream, so no consumer state changes) until the oldest entry left is
    /// filler: the broker's retention has dropped every command published before it.
    /// </summary>
    static async Task WaitForRetentionToDropTheCommandsAsync(string url)
    {
        var filler = System.Text.Encoding.UTF8.GetBytes($$"""{"filler":"{{new string('.', 300)}}"}""");
        await TestVhost.EventuallyAsync(async () =>
        {
            // A connection per round: a stream read that starts on a segment the retention is deleting can make the broker
            // close the connection (541 INTERNAL_ERROR); the next round reads again.
            try
            {
                await using var connection = await BrokerConnection.ConnectAsync(url, "fleet-state-test");
                await using (var channel = await connection.CreateChannelAsync())
                {
                    for (var i = 0; i < 8; i++) // about 2.5 KB: the active segment rolls over, and the broker applies retention then
                        await channel.BasicPublishAsync("", BrokerNames.FleetLog, filler);
                }
                await Task.Delay(500);
                return (await OldestEntryAsync(connection)).Contains("filler", StringComparison.Ordinal);
            }
            catch (Exception ex) when (ex is RabbitMQ.Client.Exceptions.OperationInterruptedException or RabbitMQ.Client.Exceptions.AlreadyClosedException
                                           or TimeoutException)
            {
                return false;
            }
        }, "the command log's retention to drop the commands", timeoutSeconds: 90);
    }

    static async Task<string> OldestEntryAsync(IConnection connection)
    {
        await using var reader = await connection.CreateChannelAsync();
        await reader.BasicQosAsync(0, 1, false);
        var first = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var consumer = new RabbitMQ.Client.Events.AsyncEventingBasicConsumer(reader);
        consumer.ReceivedAsync += (_, delivery) =>
        {
            first.TrySetResult(System.Text.Encoding.UTF8.GetString(delivery.Body.Span));
            return Task.CompletedTask;
        };
        await reader.BasicConsumeAsync(BrokerNames.FleetLog, autoAck: false, "", noLocal: false, exclusive: false,
            new Dictionary<string, object?> { ["x-stream-offset"] = "first" }, consumer);
        return await first.Task.WaitAsync(TimeSpan.FromSeconds(30));
    }
}
