using System.Text;
using System.Text.Json;
using LaneQueue.Contracts;
using LaneQueue.Producer;
using LaneQueue.Tests.Broker;
using RabbitMQ.Client;

namespace LaneQueue.Tests.Integration;

/// <summary>A task from a producer through RabbitMQ to a consumer, and its result back.</summary>
[Collection(BrokerCollection.Name)]
public class EndToEndTests(BrokerFixture broker)
{
    static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Submitted_task_runs_and_its_result_comes_back()
    {
        await using var vhost = await broker.CreateVhostAsync();
        var consumer = await ConsumerHost.StartAsync(vhost.Url, name: "consumer-a");
        try
        {
            await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = vhost.Url });
            var result = await producer.SubmitAndWaitAsync(ExternalTask.Create("q-1", SessionLane.Query, new { q = "status" }), Wait);

            Assert.True(result.Success);
            Assert.Equal(TaskStatuses.Completed, result.Status);
            Assert.Equal("q-1", result.TaskId);
            Assert.Equal(SessionLane.Query, result.Lane);
            Assert.Equal("consumer-a", result.Consumer);
            Assert.Equal("status", result.Result.GetProperty("q").GetString());
            Assert.True(result.FinishedAt >= result.StartedAt);
        }
        finally
        {
            await consumer.StopQuietlyAsync();
        }
    }

    [Fact]
    public async Task Every_lane_and_handler_round_trips()
    {
        await using var vhost = await broker.CreateVhostAsync();
        var consumer = await ConsumerHost.StartAsync(vhost.Url);
        try
        {
            await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = vhost.Url });
            var results = await Task.WhenAll(SessionLanes.All.Select(lane =>
                producer.SubmitAndWaitAsync(ExternalTask.Create($"sleep-{lane.WireName()}", lane, new { ms = 50 }, "sleep"), Wait)));
            Assert.All(results, r => Assert.True(r.Success));
            Assert.All(results, r => Assert.Equal(50, r.Result.GetProperty("slept_ms").GetInt32()));
            Assert.Equal(SessionLanes.All, results.Select(r => r.Lane));
        }
        finally
        {
            await consumer.StopQuietlyAsync();
        }
    }

    [Theory]
    [InlineData(null)]
    [InlineData("application/json")]
    public async Task Raw_json_published_with_RabbitMQ_Client_is_consumed(string? contentType)
    {
        await using var vhost = await broker.CreateVhostAsync();
        var consumer = await ConsumerHost.StartAsync(vhost.Url);
        try
        {
            var factory = new ConnectionFactory { Uri = new Uri(vhost.Url) };
            await using var connection = await factory.CreateConnectionAsync();
            await using var channel = await connection.CreateChannelAsync();
            var replies = (await channel.QueueDeclareAsync("", durable: false, exclusive: true, autoDelete: true)).QueueName;
            await channel.QueueBindAsync(replies, BrokerNames.ResultsExchange, "raw-1");

            var body = Encoding.UTF8.GetBytes("""{"id":"raw-1","lane":"execute","payload":{"from":"raw client"}}""");
            await channel.BasicPublishAsync(BrokerNames.TasksExchange, "execute", mandatory: false,
                new BasicProperties { ContentType = contentType, Persistent = true }, body);

            BasicGetResult? reply = null;
            await TestVhost.EventuallyAsync(async () => (reply = await channel.BasicGetAsync(replies, autoAck: true)) is not null, "the raw task's result");
            Assert.Equal("application/json", reply!.BasicProperties.ContentType);
            using var result = JsonDocument.Parse(reply.Body);
            Assert.Equal("raw-1", result.RootElement.GetProperty("task_id").GetString());
            Assert.True(result.RootElement.GetProperty("success").GetBoolean());
            Assert.Equal("raw client", result.RootElement.GetProperty("result").GetProperty("from").GetString());
        }
        finally
        {
            await consumer.StopQuietlyAsync();
        }
    }

    [Fact]
    public async Task Unroutable_task_is_rejected_at_the_producer()
    {
        // The producer declares the lane queues when it connects; with the query lane's queue deleted after that, nothing
        // takes the task (its exchange is still bound to the ingress exchange, but no queue to it).
        await using var vhost = await broker.CreateVhostAsync();
        await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = vhost.Url });
        var factory = new ConnectionFactory { Uri = new Uri(vhost.Url) };
        await using (var connection = await factory.CreateConnectionAsync())
        await using (var channel = await connection.CreateChannelAsync())
            await channel.QueueDeleteAsync(BrokerNames.LaneQueue(SessionLane.Query));
        var ex = await Assert.ThrowsAsync<TaskRejectedException>(() => producer.SubmitTaskAsync(ExternalTask.Create("lost-1", SessionLane.Query)));
        Assert.Contains("not routed", ex.Message, StringComparison.Ordinal);
        Assert.Contains("'query'", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Invalid_task_is_rejected_at_the_producer_naming_the_field()
    {
        await using var vhost = await broker.CreateVhostAsync();
        await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = vhost.Url, MaxPayloadBytes = 100 });
        Assert.Equal("id", (await Assert.ThrowsAsync<InvalidTaskException>(() => producer.SubmitTaskAsync(ExternalTask.Create("bad id", SessionLane.Query)))).Field);
        Assert.Equal("payload", (await Assert.ThrowsAsync<InvalidTaskException>(() =>
            producer.SubmitTaskAsync(ExternalTask.Create("big", SessionLane.Query, new { text = new string('x', 200) })))).Field);
    }

    [Fact]
    public async Task Malformed_messages_go_to_the_dead_letter_queue_with_a_reason_and_the_consumer_keeps_consuming()
    {
        await using var vhost = await broker.CreateVhostAsync();
        var consumer = await ConsumerHost.StartAsync(vhost.Url);
        try
        {
            var factory = new ConnectionFactory { Uri = new Uri(vhost.Url) };
            await using var connection = await factory.CreateConnectionAsync();
            await using var channel = await connection.CreateChannelAsync();
            (string Body, string? ContentType, string Reason)[] garbage =
            [
                ("this is not json", "application/json", ""),
                ("""{"lane":"query","payload":{}}""", "application/json", "id: missing"),
                ("""{"id":"x1","lane":"query","payload":{},"timeout_ms":"soon"}""", null, "timeout_ms"),
                ("""{"id":"x2","lane":"query","payload":{},"command_type":"no-such-handler"}""", "application/json", "command_type"),
                ("[1,2,3]", "application/json", ""),
            ];
            foreach (var (body, contentType, _) in garbage)
            {
                await channel.BasicPublishAsync(BrokerNames.TasksExchange, "query", mandatory: false,
                    new BasicProperties { ContentType = contentType, Persistent = true }, Encoding.UTF8.GetBytes(body));
            }

            await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = vhost.Url });
            var after = await producer.SubmitAndWaitAsync(ExternalTask.Create("after-garbage", SessionLane.Query), Wait);
            Assert.True(after.Success);

            var dead = new List<JsonElement>();
            await TestVhost.EventuallyAsync(async () =>
            {
                dead.AddRange(await vhost.GetMessagesAsync(TestVhost.DeadLetters(SessionLane.Query)));
                return dead.Count >= garbage.Length;
            }, "all malformed messages in lanequeue.query_error");
            Assert.Equal(garbage.Length, dead.Count);
            var reasons = dead.Select(m => m.GetProperty("properties").GetProperty("headers").GetProperty(BrokerNames.ReasonHeader).GetString()!).ToList();
            Assert.All(reasons, r => Assert.False(string.IsNullOrWhiteSpace(r)));
            foreach (var (_, _, reason) in garbage.Where(g => g.Reason.Length > 0))
                Assert.Contains(reasons, r => r.Contains(reason, StringComparison.Ordinal));
        }
        finally
        {
            await consumer.StopQuietlyAsync();
        }
    }
}
