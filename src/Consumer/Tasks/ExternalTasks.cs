using System.Collections.Concurrent;
using System.Text.Json;
using LaneQueue.Contracts;
using LaneQueue.Producer;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace LaneQueue.Consumer;

/// <summary>
/// External and Hybrid lanes. External: the task is announced on <see cref="BrokerNames.ExternalExchange"/> (routing key
/// = lane), the consumer keeps its slot and waits for a worker in any language to publish an <see cref="ExternalCompletion"/>
/// to <see cref="BrokerNames.ExternalCompletionsExchange"/> with the task id as routing key. Hybrid: announced too, but
/// run here.
/// </summary>
internal sealed class ExternalTasks(IOptions<LaneQueueOptions> options) : IHostedService, IAsyncDisposable
{
    readonly ConcurrentDictionary<string, TaskCompletionSource<ExternalCompletion>> _waiting = new(StringComparer.Ordinal);
    readonly SemaphoreSlim _channelLock = new(1, 1);
    IConnection? _connection;
    IChannel? _channel;
    string _queue = "";

    public int Pending => _waiting.Count;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var settings = options.Value;
        _connection = await BrokerConnection.ConnectAsync(settings.RabbitMqUrl, $"{settings.ConsumerName}-external", cancellationToken);
        _channel = await _connection.CreateChannelAsync(
            new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true), cancellationToken);
        _queue = (await _channel.QueueDeclareAsync("", durable: false, exclusive: true, autoDelete: true, cancellationToken: cancellationToken)).QueueName;
        var consumer = new AsyncEventingBasicConsumer(_channel);
        consumer.ReceivedAsync += (_, delivery) =>
        {
            try
            {
                var completion = TaskJson.Deserialize<ExternalCompletion>(delivery.Body.Span);
                if (_waiting.TryGetValue(completion.TaskId, out var waiter))
                    waiter.TrySetResult(completion);
            }
            catch (JsonException)
            {
                // not a completion; nothing waits for it
            }
            return Task.CompletedTask;
        };
        await _channel.BasicConsumeAsync(_queue, autoAck: true, consumer, cancellationToken);
    }

    /// <summary>Announces a task to external workers (confirmed).</summary>
    public async Task AnnounceAsync(ExternalTask task, string consumerName, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(task);
        await WithChannelAsync(channel => channel.BasicPublishAsync(BrokerNames.ExternalExchange, BrokerNames.RoutingKey(task.Lane), mandatory: false,
            new BasicProperties
            {
                Persistent = true,
                ContentType = "application/json",
                MessageId = task.Id,
                Headers = new Dictionary<string, object?> { ["consumer"] = consumerName },
            }, TaskJson.Serialize(task), cancellationToken).AsTask());
    }

    /// <summary>Announces the task and waits for its completion; <see cref="TimeoutException"/> when none comes in time.</summary>
    public async Task<ExternalCompletion> RunAsync(ExternalTask task, string consumerName, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(task);
        var waiter = new TaskCompletionSource<ExternalCompletion>(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!_waiting.TryAdd(task.Id, waiter))
            throw new InvalidOperationException($"task '{task.Id}' already waits for an external worker here");
        try
        {
            await WithChannelAsync(channel => channel.QueueBindAsync(_queue, BrokerNames.ExternalCompletionsExchange, task.Id, cancellationToken: cancellationToken));
            await AnnounceAsync(task, consumerName, cancellationToken);
            try
            {
                return await waiter.Task.WaitAsync(timeout, cancellationToken);
            }
            catch (TimeoutException)
            {
                throw new TimeoutException($"no external worker completed task '{task.Id}' within {timeout.TotalMilliseconds:0} ms");
            }
        }
        finally
        {
            _waiting.TryRemove(task.Id, out _);
            await WithChannelAsync(channel => channel.QueueUnbindAsync(_queue, BrokerNames.ExternalCompletionsExchange, task.Id, cancellationToken: CancellationToken.None));
        }
    }

    async Task WithChannelAsync(Func<IChannel, Task> action)
    {
        var channel = _channel ?? throw new InvalidOperationException("external task channel not started");
        await _channelLock.WaitAsync();
        try
        {
            await action(channel);
        }
        finally
        {
            _channelLock.Release();
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async ValueTask DisposeAsync()
    {
        if (_channel is not null)
            await _channel.DisposeAsync();
        if (_connection is not null)
            await _connection.DisposeAsync();
        _channelLock.Dispose();
    }
}
