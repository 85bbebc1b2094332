using System.Collections.Concurrent;
using LaneQueue.Contracts;
using LaneQueue.Producer;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;

namespace LaneQueue.Consumer;

/// <summary>
/// The consumer's own RabbitMQ.Client connection for what MassTransit cannot express: re-publishing a task
/// (to a retry holding queue, or back to its lane with a checkpoint) with publisher confirms before the original
/// is acked, and lifecycle events (best effort, no confirm wait).
/// </summary>
public sealed class BrokerPublisher(IOptions<LaneQueueOptions> options) : IAsyncDisposable
{
    readonly SemaphoreSlim _open = new(1, 1);
    readonly ConcurrentDictionary<string, Task> _retryQueues = new();
    IConnection? _connection;
    IChannel? _confirmed;
    IChannel? _events;

    async Task<(IChannel Confirmed, IChannel Events)> ChannelsAsync(CancellationToken cancellationToken)
    {
        if (_confirmed is { IsOpen: true } confirmed && _events is { IsOpen: true } events)
            return (confirmed, events);
        await _open.WaitAsync(cancellationToken);
        try
        {
            var settings = options.Value;
            _connection ??= await BrokerConnection.ConnectAsync(settings.RabbitMqUrl, $"{settings.ConsumerName}-publisher", cancellationToken);
            if (_confirmed is not { IsOpen: true })
            {
                _confirmed = await _connection.CreateChannelAsync(
                    new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true), cancellationToken);
                _retryQueues.Clear();
            }
            if (_events is not { IsOpen: true })
                _events = await _connection.CreateChannelAsync(cancellationToken: cancellationToken);
            return (_confirmed, _events);
        }
        finally
        {
            _open.Release();
        }
    }

    /// <summary>Publishes a transient message on the events channel (no confirm wait), e.g. a heartbeat.</summary>
    public async Task PublishAsync(string exchange, string routingKey, byte[] body, CancellationToken cancellationToken = default)
    {
        var (_, events) = await ChannelsAsync(cancellationToken);
        await events.BasicPublishAsync(exchange, routingKey, mandatory: false, new BasicProperties { ContentType = "application/json" }, body, cancellationToken);
    }

    /// <summary>Publishes a lifecycle event to <see cref="BrokerNames.EventsExchange"/>.</summary>
    public async Task PublishEventAsync(TaskEvent taskEvent, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(taskEvent);
        var (_, events) = await ChannelsAsync(cancellationToken);
        await events.BasicPublishAsync(BrokerNames.EventsExchange, BrokerNames.EventRoutingKey(taskEvent.Event, taskEvent.Lane), mandatory: false,
            new BasicProperties { ContentType = "application/json", Type = taskEvent.Event }, TaskJson.Serialize(taskEvent), cancellationToken);
    }

    /// <summary>
    /// Parks a task in the lane's holding queue for <paramref name="delay"/> (message TTL); the broker then dead-letters it
    /// back to <see cref="BrokerNames.TasksExchange"/> with the lane as routing key. No consumer slot is held meanwhile.
    /// </summary>
    public async Task ScheduleRetryAsync(ExternalTask task, TimeSpan delay, BasicProperties properties, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(task);
        var (confirmed, _) = await ChannelsAsync(cancellationToken);
        var queue = BrokerNames.RetryQueue(task.Lane, delay);
        await _retryQueues.GetOrAdd(queue, name => confirmed.QueueDeclareAsync(name, durable: true, exclusive: false, autoDelete: false,
            arguments: new Dictionary<string, object?>
            {
                ["x-message-ttl"] = (long)delay.TotalMilliseconds,
                ["x-dead-letter-exchange"] = BrokerNames.TasksExchange,
                ["x-dead-letter-routing-key"] = BrokerNames.RoutingKey(task.Lane),
            }, cancellationToken: cancellationToken));
        await PublishConfirmedAsync(confirmed, "", queue, properties, TaskJson.Serialize(task), cancellationToken);
    }

    /// <summary>Puts a task back at the tail of its lane (a preempted task with its checkpoint, or a redrive).</summary>
    public async Task RequeueAsync(ExternalTask task, BasicProperties properties, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(task);
        var (confirmed, _) = await ChannelsAsync(cancellationToken);
        await PublishConfirmedAsync(confirmed, BrokerNames.TasksExchange, BrokerNames.RoutingKey(task.Lane), properties, TaskJson.Serialize(task), cancellationToken);
    }

    static async Task PublishConfirmedAsync(IChannel channel, string exchange, string routingKey, BasicProperties properties, byte[] body, CancellationToken cancellationToken)
    {
        try
        {
            await channel.BasicPublishAsync(exchange, routingKey, mandatory: true, properties, body, cancellationToken);
        }
        catch (PublishException ex)
        {
            throw new InvalidOperationException($"the broker did not store the re-published task ({(ex.IsReturn ? "unroutable" : "nacked")}); the original stays unacked", ex);
        }
    }

    /// <summary>Properties for a re-published task: the delivery's headers (the producer's, trace context included) plus the attempt count.</summary>
    public static BasicProperties PropertiesFor(ExternalTask task, IReadOnlyBasicProperties? original, int attempt, string? lastError)
    {
        ArgumentNullException.ThrowIfNull(task);
        var headers = new Dictionary<string, object?>();
        if (original?.Headers is { } existing)
        {
            foreach (var (key, value) in existing)
            {
                if (key is not (BrokerNames.AttemptHeader or BrokerNames.LastErrorHeader))
                    headers[key] = value;
            }
        }
        headers[BrokerNames.AttemptHeader] = attempt;
        if (lastError is not null)
            headers[BrokerNames.LastErrorHeader] = lastError.Length > 1000 ? lastError[..1000] : lastError;
        return TaskMessage.Properties(task, headers);
    }

    public async ValueTask DisposeAsync()
    {
        if (_confirmed is not null)
            await _confirmed.DisposeAsync();
        if (_events is not null)
            await _events.DisposeAsync();
        if (_connection is not null)
            await _connection.DisposeAsync();
        _open.Dispose();
    }
}
