using System.Net.Http.Json;
using System.Text.Json;
using LaneQueue.Contracts;
using RabbitMQ.Client;

namespace LaneQueue.Tests.Broker;

/// <summary>A vhost of one test: its broker URL and what the management API says about its queues.</summary>
public sealed class TestVhost(BrokerFixture broker, string name, string url) : IAsyncDisposable
{
    public string Name { get; } = name;

    public string Url { get; } = url;

    /// <summary>Ready + unacked counts of a queue; null when it does not exist. The management API refreshes every few seconds.</summary>
    public async Task<JsonElement?> QueueAsync(string queue)
    {
        using var response = await broker.Management.GetAsync($"api/queues/{Uri.EscapeDataString(Name)}/{Uri.EscapeDataString(queue)}");
        return response.IsSuccessStatusCode ? await response.Content.ReadFromJsonAsync<JsonElement>() : null;
    }

    /// <summary>Takes up to <paramref name="count"/> messages off a queue (acking them) through the management API.</summary>
    public async Task<List<JsonElement>> GetMessagesAsync(string queue, int count = 100)
    {
        using var response = await broker.Management.PostAsync(
            $"api/queues/{Uri.EscapeDataString(Name)}/{Uri.EscapeDataString(queue)}/get",
            JsonContent.Create(new { count, ackmode = "ack_requeue_false", encoding = "auto", truncate = 50000 }));
        response.EnsureSuccessStatusCode();
        return await response.Content.ReadFromJsonAsync<List<JsonElement>>() ?? [];
    }

    /// <summary>
    /// The vhost's queues that hold messages, "name ready/unacked" each (the management API's figures, up to its statistics
    /// interval old): for a failure message that says where a task is stuck.
    /// </summary>
    public async Task<string> QueuesHoldingAsync()
    {
        try
        {
            using var response = await broker.Management.GetAsync($"api/queues/{Uri.EscapeDataString(Name)}?columns=name,messages_ready,messages_unacknowledged");
            var queues = await response.Content.ReadFromJsonAsync<JsonElement>();
            var holding = queues.EnumerateArray()
                .Select(q => (Name: q.GetProperty("name").GetString(), Ready: Count(q, "messages_ready"), Unacked: Count(q, "messages_unacknowledged")))
                .Where(q => q.Ready + q.Unacked > 0).Select(q => $"{q.Name} {q.Ready}/{q.Unacked}").ToList();
            return holding.Count == 0 ? $"no queue of {Name} holds a message" : $"{Name}'s queues holding messages (ready/unacked): {string.Join(", ", holding)}";
        }
        catch (Exception ex) when (ex is HttpRequestException or JsonException or InvalidOperationException)
        {
            return $"could not list {Name}'s queues: {ex.Message}";
        }

        static long Count(JsonElement queue, string field) => queue.TryGetProperty(field, out var n) && n.TryGetInt64(out var v) ? v : 0;
    }

    /// <summary>
    /// Which connections hold consumers on a queue ("connection name (consumer tag)" each, from the management API, up to its
    /// statistics interval old): for a failure message that says whose consumer is still there.
    /// </summary>
    public async Task<string> ConsumersOnAsync(string queue)
    {
        try
        {
            using var response = await broker.Management.GetAsync($"api/consumers/{Uri.EscapeDataString(Name)}");
            var consumers = await response.Content.ReadFromJsonAsync<JsonElement>();
            var on = new List<string>();
            foreach (var consumer in consumers.EnumerateArray().Where(c => c.GetProperty("queue").GetProperty("name").GetString() == queue))
            {
                // The broker names a connection by its addresses; the name the client gave it (e.g. a consumer's) is on the connection.
                var connection = consumer.GetProperty("channel_details").GetProperty("connection_name").GetString() ?? "";
                using var details = await broker.Management.GetAsync($"api/connections/{Uri.EscapeDataString(connection)}");
                var given = details.IsSuccessStatusCode && (await details.Content.ReadFromJsonAsync<JsonElement>()).TryGetProperty("user_provided_name", out var n)
                    ? n.GetString() : null;
                on.Add($"{given ?? connection} ({consumer.GetProperty("consumer_tag").GetString()})");
            }
            return on.Count == 0 ? $"the management API lists no consumer on {queue}" : $"consumers on {queue}: {string.Join(", ", on)}";
        }
        catch (Exception ex) when (ex is HttpRequestException or JsonException or InvalidOperationException or KeyNotFoundException)
        {
            return $"could not list the consumers of {queue}: {ex.Message}";
        }
    }

    /// <summary>Messages ready in a queue (0 when it does not exist yet), read over AMQP: no management-API refresh lag.</summary>
    public async Task<uint> ReadyAsync(string queue) => (await DeclarePassiveAsync(queue))?.MessageCount ?? 0;

    /// <summary>Messages ready in the delay tree's hop queues, summed over its levels (delayed tasks and retries waiting there).</summary>
    public async Task<uint> ReadyInDelayTreeAsync()
    {
        var ready = 0u;
        for (var level = 0; level < LaneQueue.Producer.DelayTopology.Levels; level++)
            ready += await ReadyAsync(BrokerNames.DelayQueue(level));
        return ready;
    }

    /// <summary>Consumers of a queue (0 when it does not exist yet), read over AMQP.</summary>
    public async Task<uint> ConsumersAsync(string queue) => (await DeclarePassiveAsync(queue))?.ConsumerCount ?? 0;

    /// <summary>A queue's passive declare (ready messages, consumers), or null when it does not exist.</summary>
    public async Task<QueueDeclareOk?> DeclarePassiveAsync(string queue)
    {
        var factory = new ConnectionFactory { Uri = new Uri(Url) };
        await using var connection = await factory.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        try
        {
            return await channel.QueueDeclarePassiveAsync(queue);
        }
        catch (RabbitMQ.Client.Exceptions.OperationInterruptedException)
        {
            return null;
        }
    }

    /// <summary>Polls until <paramref name="condition"/> holds or the time-out passes (then fails with <paramref name="what"/>).</summary>
    public static async Task EventuallyAsync(Func<Task<bool>> condition, string what, int timeoutSeconds = 60)
    {
        if (!await WithinAsync(condition, timeoutSeconds))
            Assert.Fail($"timed out after {timeoutSeconds} s waiting for: {what}");
    }

    /// <summary>Polls until <paramref name="condition"/> holds (true) or the time-out passes (false).</summary>
    public static async Task<bool> WithinAsync(Func<Task<bool>> condition, int timeoutSeconds)
    {
        var deadline = DateTime.UtcNow.AddSeconds(timeoutSeconds);
        while (DateTime.UtcNow < deadline)
        {
            if (await condition())
                return true;
            await Task.Delay(100);
        }
        return false;
    }

    /// <summary>Polls until <paramref name="read"/> returns a value or the time-out passes (then fails with <paramref name="what"/>).</summary>
    public static async Task<T> PollAsync<T>(Func<Task<T?>> read, string what, int timeoutSeconds = 60) where T : class
    {
        T? value = null;
        await EventuallyAsync(async () => (value = await read()) is not null, what, timeoutSeconds);
        return value!;
    }

    public static string DeadLetters(SessionLane lane) => BrokerNames.DeadLetterQueue(BrokerNames.LaneQueue(lane));

    public ValueTask DisposeAsync() => new(broker.DeleteVhostAsync(Name));
}
