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
/// = lane, mandatory, so it is stored in the lane's durable <see cref="BrokerNames.ExternalQueue"/> until a worker takes it or
/// its deadline passes), the consumer keeps its slot and waits for a worker in any language to publish an
/// <see cref="ExternalCompletion"/> to <see cref="BrokerNames.ExternalCompletionsExchange"/> with the task id as routing key.
/// Hybrid: announced as a notice (routing key <c>&lt;lane&gt;.hybrid</c>), but run here.
/// </summary>
internal sealed class ExternalTasks(IOptions<LaneQueueOptions> options) : IHostedService, IAsyncDisposable
{
    sealed record Waiting(TaskCompletionSource<ExternalCompletion> Done, PendingExternalTask Task);

    readonly ConcurrentDictionary<string, Waiting> _waiting = new(StringComparer.Ordinal);
    readonly SemaphoreSlim _channelLock = new(1, 1);
    IConnection? _connection;
    IChannel? _channel;
    string _queue = "";

    public int Pending => _waiting.Count;

    /// <summary>The tasks that hold a slot here and wait for an external worker, oldest announcement first.</summary>
    public IReadOnlyList<PendingExternalTask> PendingTasks => [.. _waiting.Values.Select(w => w.Task).OrderBy(t => t.AnnouncedAt)];

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
                    waiter.Done.TrySetResult(completion);
            }
            catch (JsonException)
            {
                // not a completion; nothing waits for it
            }
            return Task.CompletedTask;
        };
        await _channel.BasicConsumeAsync(_queue, autoAck: true, consumer, cancellationToken);
    }

    /// <summary>A Hybrid lane's notice that the task runs here (confirmed; not kept for workers).</summary>
    public Task AnnounceHybridAsync(ExternalTask task, string consumerName, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(task);
        return PublishAsync(task, BrokerNames.HybridRoutingKey(task.Lane), mandatory: false, consumerName, expiration: null, cancellationToken);
    }

    Task PublishAsync(ExternalTask task, string routingKey, bool mandatory, string consumerName, TimeSpan? expiration, CancellationToken cancellationToken) =>
        WithChannelAsync(channel => channel.BasicPublishAsync(BrokerNames.ExternalExchange, routingKey, mandatory,
            new BasicProperties
            {
                Persistent = true,
                ContentType = "application/json",
                MessageId = task.Id,
                // Nobody waits past the deadline: the broker drops an announcement no worker took by then.
                Expiration = expiration is { } ttl ? Math.Max(1, (long)ttl.TotalMilliseconds).ToString(System.Globalization.CultureInfo.InvariantCulture) : null,
                Headers = new Dictionary<string, object?> { ["consumer"] = consumerName },
            }, TaskJson.Serialize(task), cancellationToken).AsTask());

    /// <summary>
    /// Announces the task (stored in the lane's durable queue of external work until a worker takes it or the deadline
    /// passes) and waits for its completion; <see cref="TimeoutException"/> when none comes in time.
    /// </summary>
    /// <param name="attempt">Retries before this run (0 on the first), as the consumer counts them.</param>
    public async Task<ExternalCompletion> RunAsync(ExternalTask task, int attempt, string consumerName, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(task);
        var announcedAt = DateTimeOffset.UtcNow;
        var waiter = new Waiting(new TaskCompletionSource<ExternalCompletion>(TaskCreationOptions.RunContinuationsAsynchronously), new PendingExternalTask
        {
            TaskId = task.Id,
            Lane = task.Lane,
            Consumer = consumerName,
            Attempt = attempt + 1,
            AnnouncedAt = announcedAt,
            Deadline = announcedAt + timeout,
        });
        if (!_waiting.TryAdd(task.Id, waiter))
            throw new InvalidOperationException($"task '{task.Id}' already waits for an external worker here");
        try
        {
            await WithChannelAsync(channel => channel.QueueBindAsync(_queue, BrokerNames.ExternalCompletionsExchange, task.Id, cancellationToken: cancellationToken));
            await PublishAsync(task, BrokerNames.RoutingKey(task.Lane), mandatory: true, consumerName, timeout, cancellationToken);
            try
            {
                return await waiter.Done.Task.WaitAsync(timeout, cancellationToken);
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
