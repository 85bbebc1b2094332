using System.Net.Http.Json;
using System.Text.Json;
using LaneQueue.Contracts;
using LaneQueue.Producer;
using LaneQueue.Tests.Broker;
using RabbitMQ.Client;

namespace LaneQueue.Tests.Faults;

/// <summary>
/// A producer's connection recovers even when the broker refuses to declare one of the durable queues it declared at
/// connect. In a cluster that is a classic queue whose node is down (404): RabbitMQ.Client then retried the whole recovery
/// until the node came back, and a producer of the cluster test never submitted again. Here the refusal is a 406: the
/// queue was re-made with other arguments while the producer was disconnected.
/// </summary>
[Collection(BrokerCollection.Name)]
public sealed class ProducerRecoveryTests(BrokerFixture broker)
{
    [Fact]
    public async Task A_producer_reconnects_and_submits_when_a_durable_queue_it_declared_can_no_longer_be_declared_as_it_was()
    {
        await using var vhost = await broker.CreateVhostAsync();
        var clientName = $"recovery-{Guid.NewGuid():N}";
        await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions
        {
            RabbitMqUrl = vhost.Url,
            ClientName = clientName,
            RecoveryTimeout = TimeSpan.FromSeconds(20),
        });
        await producer.SubmitTaskAsync(ExternalTask.Create("before", SessionLane.Query));

        // An operator re-makes the external queue with a length limit: declaring it as the producer did is now refused (406).
        var external = BrokerNames.ExternalQueue(SessionLane.Control);
        var factory = new ConnectionFactory { Uri = new Uri(vhost.Url) };
        await using (var admin = await factory.CreateConnectionAsync())
        await using (var channel = await admin.CreateChannelAsync())
        {
            await channel.QueueDeleteAsync(external);
            await channel.QueueDeclareAsync(external, durable: true, exclusive: false, autoDelete: false,
                arguments: new Dictionary<string, object?> { ["x-max-length"] = 5 });
        }

        // The broker closes the producer's connection (as a node stop does); automatic recovery starts.
        await CloseConnectionAsync(vhost, clientName);

        // Within the producer's 20 s recovery time-out: without the recovery filter every recovery attempt fails on the
        // 406 and this submit throws TaskRejectedException ("has not been reachable for 20 s").
        using var submitTimeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await producer.SubmitTaskAsync(ExternalTask.Create("after", SessionLane.Query), submitTimeout.Token);
        Assert.Equal(2u, await vhost.ReadyAsync(BrokerNames.LaneQueue(SessionLane.Query)));

        // Recovery left the durable queue as the operator made it.
        var arguments = (await vhost.QueueAsync(external))!.Value.GetProperty("arguments");
        Assert.Equal(5, arguments.GetProperty("x-max-length").GetInt32());
    }

    /// <summary>
    /// What the recovery filter keeps: a server-named exclusive queue (the lane gate's follower, the result listeners), its
    /// binding and its consumer come back under a new name, and messages published to the exchange reach the consumer again.
    /// </summary>
    [Fact]
    public async Task A_server_named_queue_its_binding_and_its_consumer_come_back_after_a_recovery()
    {
        await using var vhost = await broker.CreateVhostAsync();
        var clientName = $"follower-{Guid.NewGuid():N}";
        const string exchange = "recovery.test.states";
        await using var connection = await BrokerConnection.ConnectAsync(vhost.Url, clientName);
        await using var channel = await connection.CreateChannelAsync();
        await channel.ExchangeDeclareAsync(exchange, ExchangeType.Fanout, durable: true, autoDelete: false);
        var queue = (await channel.QueueDeclareAsync("", durable: false, exclusive: true, autoDelete: true)).QueueName;
        await channel.QueueBindAsync(queue, exchange, "");
        var received = System.Threading.Channels.Channel.CreateUnbounded<string>();
        var follower = new RabbitMQ.Client.Events.AsyncEventingBasicConsumer(channel);
        follower.ReceivedAsync += (_, delivery) =>
        {
            received.Writer.TryWrite(System.Text.Encoding.UTF8.GetString(delivery.Body.Span));
            return Task.CompletedTask;
        };
        await channel.BasicConsumeAsync(queue, autoAck: true, follower);
        var recovered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        connection.RecoverySucceededAsync += (_, _) =>
        {
            recovered.TrySetResult();
            return Task.CompletedTask;
        };

        await CloseConnectionAsync(vhost, clientName);
        await recovered.Task.WaitAsync(TimeSpan.FromSeconds(60));

        // The queue has a new server-made name; the publisher does not need to know it, the binding does.
        var factory = new ConnectionFactory { Uri = new Uri(vhost.Url) };
        await using var admin = await factory.CreateConnectionAsync();
        await using var publisher = await admin.CreateChannelAsync();
        var got = await TestVhost.PollAsync<string>(async () =>
        {
            // Recovery declares the queue, then its binding, then its consumer: publish until one arrives.
            await publisher.BasicPublishAsync(exchange, "", System.Text.Encoding.UTF8.GetBytes("after"));
            using var wait = new CancellationTokenSource(TimeSpan.FromMilliseconds(500));
            try
            {
                return await received.Reader.ReadAsync(wait.Token);
            }
            catch (OperationCanceledException)
            {
                return null;
            }
        }, "a message published to the exchange to reach the recovered server-named queue's consumer (its binding or its consumer was not recovered)", 30);
        Assert.Equal("after", got);
    }

    /// <summary>The broker closes the connection the client named so (as a node stop does); its automatic recovery starts.</summary>
    async Task CloseConnectionAsync(TestVhost vhost, string clientName)
    {
        var connection = await TestVhost.PollAsync(async () =>
            (await broker.Management.GetFromJsonAsync<List<JsonElement>>($"api/vhosts/{Uri.EscapeDataString(vhost.Name)}/connections"))!
                .FirstOrDefault(c => c.TryGetProperty("client_properties", out var p) && p.TryGetProperty("connection_name", out var n) && n.GetString() == clientName)
                is { ValueKind: JsonValueKind.Object } found ? found.GetProperty("name").GetString() : null,
            $"the connection '{clientName}' in the management API");
        using var close = new HttpRequestMessage(HttpMethod.Delete, $"api/connections/{Uri.EscapeDataString(connection)}");
        close.Headers.Add("X-Reason", "test: node stopped");
        (await broker.Management.SendAsync(close)).EnsureSuccessStatusCode();
    }
}
