using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using LaneQueue.Contracts;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace LaneQueue.Tests.Broker;

/// <summary>
/// A plain RabbitMQ.Client producer, as any other language would be: publishes raw bytes with whatever properties and
/// headers a test wants (publisher confirms on), reads results off a queue bound to <c>lanequeue.results</c> with
/// <c>#</c>, and drains dead-letter queues.
/// </summary>
public sealed class RawClient : IAsyncDisposable
{
    readonly IConnection _connection;
    readonly IChannel _publish;
    readonly IChannel _results;
    readonly ConcurrentDictionary<string, JsonElement> _received = new(StringComparer.Ordinal);

    RawClient(IConnection connection, IChannel publish, IChannel results)
    {
        _connection = connection;
        _publish = publish;
        _results = results;
    }

    /// <summary>Results received so far, by task id.</summary>
    public IReadOnlyDictionary<string, JsonElement> Results => _received;

    public static async Task<RawClient> ConnectAsync(string url)
    {
        var factory = new ConnectionFactory { Uri = new Uri(url), ClientProvidedName = "lanequeue-test-raw-client" };
        var connection = await factory.CreateConnectionAsync();
        var publish = await connection.CreateChannelAsync(new CreateChannelOptions(
            publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true, outstandingPublisherConfirmationsRateLimiter: null));
        var results = await connection.CreateChannelAsync();
        var client = new RawClient(connection, publish, results);
        var queue = (await results.QueueDeclareAsync("", durable: false, exclusive: true, autoDelete: true)).QueueName;
        await results.QueueBindAsync(queue, BrokerNames.ResultsExchange, "#");
        var consumer = new AsyncEventingBasicConsumer(results);
        consumer.ReceivedAsync += (_, delivery) =>
        {
            using var doc = JsonDocument.Parse(delivery.Body);
            var root = doc.RootElement.Clone();
            client._received[root.GetProperty("task_id").GetString()!] = root;
            return Task.CompletedTask;
        };
        await results.BasicConsumeAsync(queue, autoAck: true, consumer);
        return client;
    }

    /// <summary>Publishes to <c>lanequeue.tasks</c> (persistent unless the properties say otherwise) and waits for the broker's confirm.</summary>
    public async Task PublishAsync(string routingKey, ReadOnlyMemory<byte> body, BasicProperties? properties = null, bool mandatory = true)
    {
        properties ??= new BasicProperties { ContentType = "application/json" };
        if (!properties.IsDeliveryModePresent())
            properties.Persistent = true;
        await _publish.BasicPublishAsync(BrokerNames.TasksExchange, routingKey, mandatory, properties, body);
    }

    public Task PublishAsync(string routingKey, string body, string? contentType = "application/json") =>
        PublishAsync(routingKey, Encoding.UTF8.GetBytes(body), new BasicProperties { ContentType = contentType });

    /// <summary>Publishes a valid task to its lane and waits for its result; fails the test when it does not come.</summary>
    public async Task<JsonElement> RunValidAsync(string id, SessionLane lane = SessionLane.Query, int timeoutSeconds = 30)
    {
        await PublishAsync(lane.WireName(), $$$"""{"id":"{{{id}}}","lane":"{{{lane.WireName()}}}","payload":{"n":1}}""");
        return await ResultAsync(id, timeoutSeconds);
    }

    public async Task<JsonElement> ResultAsync(string id, int timeoutSeconds = 30)
    {
        await TestVhost.EventuallyAsync(() => Task.FromResult(_received.ContainsKey(id)), $"the result of task '{id}'", timeoutSeconds);
        return _received[id];
    }

    /// <summary>Messages ready in a queue (0 when it does not exist).</summary>
    public async Task<uint> CountAsync(string queue)
    {
        await using var channel = await _connection.CreateChannelAsync();
        try
        {
            return (await channel.QueueDeclarePassiveAsync(queue)).MessageCount;
        }
        catch (RabbitMQ.Client.Exceptions.OperationInterruptedException)
        {
            return 0;
        }
    }

    public sealed record DeadLetter(byte[] Body, string? ContentType, IDictionary<string, object?> Headers)
    {
        public string Reason => Headers.TryGetValue(BrokerNames.ReasonHeader, out var value) ? HeaderText(value) : "";
    }

    /// <summary>Takes every message off a queue (acking it).</summary>
    public async Task<List<DeadLetter>> DrainAsync(string queue)
    {
        var taken = new List<DeadLetter>();
        await using var channel = await _connection.CreateChannelAsync();
        while (await channel.BasicGetAsync(queue, autoAck: true) is { } message)
            taken.Add(new DeadLetter(message.Body.ToArray(), message.BasicProperties.ContentType, message.BasicProperties.Headers ?? new Dictionary<string, object?>()));
        return taken;
    }

    /// <summary>Waits until a queue holds at least <paramref name="count"/> messages, then drains it.</summary>
    public async Task<List<DeadLetter>> DeadLettersAsync(SessionLane lane, int count, int timeoutSeconds = 30)
    {
        var queue = TestVhost.DeadLetters(lane);
        await TestVhost.EventuallyAsync(async () => await CountAsync(queue) >= count, $"{count} message(s) in {queue}", timeoutSeconds);
        return await DrainAsync(queue);
    }

    public static string HeaderText(object? value) => value switch
    {
        byte[] bytes => Encoding.UTF8.GetString(bytes),
        null => "",
        _ => value.ToString() ?? "",
    };

    public async ValueTask DisposeAsync()
    {
        await _results.DisposeAsync();
        await _publish.DisposeAsync();
        await _connection.DisposeAsync();
    }
}
