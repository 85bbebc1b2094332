using LaneQueue.Contracts;
using LaneQueue.Producer;
using RabbitMQ.Client;

namespace LaneQueue.Bench.Infra;

/// <summary>
/// The baselines' publisher: plain RabbitMQ.Client 7, persistent messages, publisher confirms with tracking
/// (each publish returns once the broker stored the message), straight to a queue through the default exchange.
/// The body is the same task JSON LaneQueue's producer sends.
/// </summary>
public sealed class RawPublisher : IAsyncDisposable
{
    IConnection _connection = null!;
    IChannel _channel = null!;

    public static async Task<RawPublisher> ConnectAsync(string url, CancellationToken cancellationToken)
    {
        var publisher = new RawPublisher();
        publisher._connection = await BrokerConnection.ConnectAsync(url, "lanequeue-bench-raw-publisher", cancellationToken);
        publisher._channel = await publisher._connection.CreateChannelAsync(
            new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true), cancellationToken);
        return publisher;
    }

    public async Task PublishAsync(string queue, ExternalTask task, bool withPriority, CancellationToken cancellationToken)
    {
        var properties = new BasicProperties
        {
            Persistent = true,
            ContentType = "application/json",
            MessageId = task.Id,
        };
        if (withPriority)
            properties.Priority = task.Lane.MessagePriority();
        await _channel.BasicPublishAsync("", queue, mandatory: true, properties, TaskJson.Serialize(task), cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        await _channel.DisposeAsync();
        await _connection.DisposeAsync();
    }
}

public static class Submit
{
    /// <summary>Publishes <paramref name="count"/> tasks with at most <paramref name="window"/> unconfirmed at once.</summary>
    public static async Task ManyAsync(int count, Func<int, Task> publish, CancellationToken cancellationToken, int window = 256)
    {
        using var gate = new SemaphoreSlim(window, window);
        var pending = new List<Task>(count);
        Exception? failure = null;
        for (var i = 0; i < count && failure is null; i++)
        {
            await gate.WaitAsync(cancellationToken);
            var index = i;
            pending.Add(Task.Run(async () =>
            {
                try
                {
                    await publish(index);
                }
                catch (Exception ex)
                {
                    failure ??= ex;
                    throw;
                }
                finally
                {
                    gate.Release();
                }
            }, cancellationToken));
        }
        await Task.WhenAll(pending);
    }

    public static ExternalTask Sleep(string id, SessionLane lane, int ms) =>
        ExternalTask.Create(id, lane, new { ms }, "sleep");

    public static ExternalTask Echo(string id, SessionLane lane) =>
        ExternalTask.Create(id, lane, new { n = 1 }, "echo");
}
