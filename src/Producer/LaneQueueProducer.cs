using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using LaneQueue.Contracts;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using RabbitMQ.Client.Exceptions;

namespace LaneQueue.Producer;

public sealed record ProducerOptions
{
    public string RabbitMqUrl { get; init; } = BrokerConnection.UrlFromEnvironment();
    public int MaxPayloadBytes { get; init; } = TaskParser.DefaultMaxPayloadBytes;
    public string ClientName { get; init; } = $"lanequeue-producer@{Environment.MachineName}";

    /// <summary>
    /// How long a submit waits for the connection's automatic recovery (broker restart, network cut, cluster fail-over)
    /// and publishes again, before it fails with <see cref="TaskRejectedException"/>. Zero: fail at once.
    /// </summary>
    public TimeSpan RecoveryTimeout { get; init; } = TimeSpan.FromSeconds(30);
}

/// <summary>
/// Submits tasks to LaneQueue. A submit returns only after the broker has confirmed the message
/// (publisher confirms, persistent delivery, mandatory routing), so "accepted" means "stored".
/// Safe for concurrent use.
/// </summary>
public sealed class LaneQueueProducer : ILaneQueueProducer, IAsyncDisposable
{
    readonly ProducerOptions _options;
    readonly IConnection _connection;
    readonly SemaphoreSlim _publishLock = new(1, 1);
    IChannel _publishChannel;
    readonly ConcurrentDictionary<string, TaskCompletionSource<ExternalTaskResult>> _waiting = new();
    readonly SemaphoreSlim _replyLock = new(1, 1);
    IChannel? _replyChannel;
    string? _replyQueue;

    LaneQueueProducer(ProducerOptions options, IConnection connection, IChannel publishChannel)
    {
        _options = options;
        _connection = connection;
        _publishChannel = publishChannel;
    }

    public static async Task<LaneQueueProducer> ConnectAsync(ProducerOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new ProducerOptions();
        IConnection connection;
        try
        {
            connection = await BrokerConnection.ConnectAsync(options.RabbitMqUrl, options.ClientName, cancellationToken);
        }
        catch (Exception ex) when (ex is RabbitMQ.Client.Exceptions.BrokerUnreachableException or System.Net.Sockets.SocketException)
        {
            throw new TaskRejectedException(
                $"cannot reach RabbitMQ at {BrokerConnection.Redact(options.RabbitMqUrl)}: {ex.Message}. " +
                $"Start one with 'bash scripts/broker-up.sh' or set {BrokerConnection.UrlVariable}.", ex);
        }

        var channel = await connection.CreateChannelAsync(
            new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true),
            cancellationToken);
        try
        {
            await BrokerTopology.DeclareAsync(channel, cancellationToken);
        }
        catch (OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == 403)
        {
            // A producer-only user (scripts/broker-users.sh) may not declare: the exchanges must exist already, which a passive
            // declare checks without any permission.
            await channel.DisposeAsync();
            channel = await connection.CreateChannelAsync(
                new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true),
                cancellationToken);
            await channel.ExchangeDeclarePassiveAsync(BrokerNames.TasksExchange, cancellationToken);
            await channel.ExchangeDeclarePassiveAsync(BrokerNames.ResultsExchange, cancellationToken);
        }
        return new LaneQueueProducer(options, connection, channel);
    }

    /// <summary>
    /// Validates and publishes a task; returns once the broker has stored it. While the broker cannot be reached, it waits
    /// for the connection to recover and publishes again (up to <see cref="ProducerOptions.RecoveryTimeout"/>): a task whose
    /// confirm was lost with the connection may then be stored twice, which consumers de-duplicate by task id.
    /// </summary>
    /// <exception cref="InvalidTaskException">The task breaks the wire contract; names the field.</exception>
    /// <exception cref="TaskRejectedException">No queue is bound for the lane, the broker nacked the message, or it stayed
    /// unreachable for the whole recovery time-out (the task may or may not be stored: submit it again with the same id).</exception>
    public async Task SubmitTaskAsync(ExternalTask task, CancellationToken cancellationToken = default)
    {
        TaskParser.Validate(task, _options.MaxPayloadBytes);
        using var activity = LaneQueueTelemetry.Source.StartActivity($"{BrokerNames.TasksExchange} publish", ActivityKind.Producer);
        activity?.SetTag("messaging.system", "rabbitmq");
        activity?.SetTag("messaging.destination.name", BrokerNames.TasksExchange);
        activity?.SetTag("messaging.rabbitmq.destination.routing_key", BrokerNames.RoutingKey(task.Lane));
        activity?.SetTag("lanequeue.task_id", task.Id);
        activity?.SetTag("lanequeue.lane", task.Lane.WireName());
        var headers = new Dictionary<string, object?>();
        LaneQueueTelemetry.Inject(activity, headers);
        var properties = TaskMessage.Properties(task, headers);
        var body = TaskJson.Serialize(task);
        try
        {
            await WithRecoveryAsync(channel => channel.BasicPublishAsync(
                BrokerNames.TasksExchange, BrokerNames.RoutingKey(task.Lane), mandatory: true,
                properties, body, cancellationToken).AsTask(), $"task '{task.Id}'", cancellationToken);
            LaneQueueTelemetry.CountSubmitted(task.Lane);
        }
        catch (PublishException ex) when (ex.IsReturn)
        {
            throw new TaskRejectedException(
                $"task '{task.Id}' was not routed: no queue is bound to lane '{task.Lane.WireName()}' on exchange " +
                $"'{BrokerNames.TasksExchange}'. Start a consumer (it declares the lane queues) or check the vhost in the broker URL.", ex);
        }
        catch (PublishException ex)
        {
            throw new TaskRejectedException($"the broker refused task '{task.Id}' (nack); it was not stored, submit it again.", ex);
        }
    }

    /// <summary>
    /// Runs a publish on the confirmed channel; when the broker cannot be reached, waits for recovery and runs it again,
    /// until <see cref="ProducerOptions.RecoveryTimeout"/> has passed.
    /// </summary>
    async Task WithRecoveryAsync(Func<IChannel, Task> publish, string what, CancellationToken cancellationToken)
    {
        var started = DateTime.UtcNow;
        while (true)
        {
            try
            {
                await publish(await PublishChannelAsync(cancellationToken));
                return;
            }
            catch (Exception ex) when (BrokerConnection.IsConnectionFailure(ex) && !cancellationToken.IsCancellationRequested)
            {
                if (DateTime.UtcNow - started >= _options.RecoveryTimeout)
                {
                    throw new TaskRejectedException(
                        $"could not submit {what}: the broker at {BrokerConnection.Redact(_options.RabbitMqUrl)} has not been reachable for " +
                        $"{_options.RecoveryTimeout.TotalSeconds:0.#} s ({ex.Message}). It may or may not be stored: submit it again with the same id " +
                        "(consumers skip an id that already ran).", ex);
                }
                await Task.Delay(250, cancellationToken);
            }
        }
    }

    /// <summary>
    /// The confirmed publish channel; a new one when the broker closed just the channel (a refused publish). Channels of a
    /// lost connection come back with its automatic recovery.
    /// </summary>
    async Task<IChannel> PublishChannelAsync(CancellationToken cancellationToken)
    {
        if (_publishChannel.IsOpen || !_connection.IsOpen)
            return _publishChannel;
        await _publishLock.WaitAsync(cancellationToken);
        try
        {
            if (!_publishChannel.IsOpen && _connection.IsOpen && _publishChannel.CloseReason is { ReplyCode: 403 or 404 or 405 or 406 })
            {
                var old = _publishChannel;
                _publishChannel = await _connection.CreateChannelAsync(
                    new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true), cancellationToken);
                await old.DisposeAsync();
            }
            return _publishChannel;
        }
        finally
        {
            _publishLock.Release();
        }
    }

    /// <summary>The dead-letter queues: list, redrive, purge.</summary>
    public DeadLetters DeadLetters => new(_connection);

    /// <summary>
    /// Follows lifecycle events (<see cref="TaskEvent"/>) on a queue of this producer's own; <paramref name="pattern"/> is a
    /// topic binding such as <c>command.#</c> or <c>command.completed.query</c>. Dispose the result to stop.
    /// </summary>
    public async Task<IAsyncDisposable> WatchEventsAsync(Func<TaskEvent, Task> onEvent, string pattern = "command.#", CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(onEvent);
        var channel = await _connection.CreateChannelAsync(cancellationToken: cancellationToken);
        var queue = (await channel.QueueDeclareAsync("", durable: false, exclusive: true, autoDelete: true, cancellationToken: cancellationToken)).QueueName;
        await channel.QueueBindAsync(queue, BrokerNames.EventsExchange, pattern, cancellationToken: cancellationToken);
        var consumer = new AsyncEventingBasicConsumer(channel);
        consumer.ReceivedAsync += async (_, delivery) =>
        {
            TaskEvent taskEvent;
            try
            {
                taskEvent = TaskJson.Deserialize<TaskEvent>(delivery.Body.Span);
            }
            catch (JsonException)
            {
                return;
            }
            await onEvent(taskEvent);
        };
        await channel.BasicConsumeAsync(queue, autoAck: true, consumer, cancellationToken);
        return channel;
    }

    /// <summary>Fleet-wide stats: heartbeats heard over <paramref name="listen"/> (default 2.5 s) plus the broker's depths.</summary>
    public Task<QueueStats> ReadStatsAsync(TimeSpan? listen = null, CancellationToken cancellationToken = default) =>
        FleetStats.ReadAsync(_connection, listen ?? TimeSpan.FromMilliseconds(2500), cancellationToken);

    /// <summary>Pauses a lane on every consumer, including those that start later, until <see cref="ResumeLaneAsync"/>.</summary>
    public Task PauseLaneAsync(SessionLane lane, CancellationToken cancellationToken = default) =>
        SendFleetCommandAsync(new FleetCommand { Command = FleetCommand.Pause, Lane = lane.WireName() }, cancellationToken);

    public Task ResumeLaneAsync(SessionLane lane, CancellationToken cancellationToken = default) =>
        SendFleetCommandAsync(new FleetCommand { Command = FleetCommand.Resume, Lane = lane.WireName() }, cancellationToken);

    /// <summary>Sets a lane's handler mode on every consumer (the reference's <c>set_lane_handler</c>).</summary>
    public Task SetLaneHandlerAsync(SessionLane lane, TaskHandlerMode mode, long? timeoutMs = null, CancellationToken cancellationToken = default) =>
        SendFleetCommandAsync(new FleetCommand { Command = FleetCommand.SetHandler, Lane = lane.WireName(), Mode = mode.ToString().ToLowerInvariant(), TimeoutMs = timeoutMs }, cancellationToken);

    /// <summary>Asks one consumer to drain: stop taking tasks, finish running ones, return the rest, exit.</summary>
    public Task DrainConsumerAsync(string consumerName, CancellationToken cancellationToken = default) =>
        SendFleetCommandAsync(new FleetCommand { Command = FleetCommand.Drain, Consumer = consumerName }, cancellationToken);

    /// <summary>Cancels a task on every consumer: skipped if still waiting, its token fired if running.</summary>
    public Task CancelTaskAsync(string taskId, CancellationToken cancellationToken = default) =>
        SendFleetCommandAsync(new FleetCommand { Command = FleetCommand.Cancel, TaskId = taskId }, cancellationToken);

    /// <summary>Cancels every task of a session created before now.</summary>
    public Task CancelSessionAsync(string sessionId, CancellationToken cancellationToken = default) =>
        SendFleetCommandAsync(new FleetCommand { Command = FleetCommand.Cancel, SessionId = sessionId }, cancellationToken);

    /// <summary>Publishes a fleet command (kept in the fleet log so consumers that start later apply it too).</summary>
    public async Task SendFleetCommandAsync(FleetCommand command, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(command);
        await PublishConfirmedAsync(BrokerNames.FleetExchange, "", TaskJson.Serialize(command), $"fleet command '{command.Command}'", cancellationToken);
    }

    /// <summary>Completes a task of an External lane (the reference's <c>complete_external_task</c>).</summary>
    public async Task CompleteExternalTaskAsync(ExternalCompletion completion, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(completion);
        await PublishConfirmedAsync(BrokerNames.ExternalCompletionsExchange, completion.TaskId, TaskJson.Serialize(completion),
            $"completion of external task '{completion.TaskId}' (is a consumer waiting for it?)", cancellationToken);
    }

    async Task PublishConfirmedAsync(string exchange, string routingKey, byte[] body, string what, CancellationToken cancellationToken)
    {
        try
        {
            await WithRecoveryAsync(channel => channel.BasicPublishAsync(exchange, routingKey, mandatory: true,
                new BasicProperties { Persistent = true, ContentType = "application/json" }, body, cancellationToken).AsTask(), "the " + what, cancellationToken);
        }
        catch (PublishException ex)
        {
            throw new TaskRejectedException($"the broker did not take the {what}: {(ex.IsReturn ? "unroutable" : "nacked")}", ex);
        }
    }

    /// <summary>Submits a task and waits for its <see cref="ExternalTaskResult"/>.</summary>
    /// <exception cref="TimeoutException">No result arrived within <paramref name="timeout"/>; the task may still run.</exception>
    public async Task<ExternalTaskResult> SubmitAndWaitAsync(ExternalTask task, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(task);
        var wait = await WatchResultAsync(task.Id, cancellationToken);
        try
        {
            await SubmitTaskAsync(task, cancellationToken);
            return await wait.WaitAsync(timeout, cancellationToken);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException(
                $"no result for task '{task.Id}' within {timeout.TotalSeconds:0.#} s. It is stored in lane '{task.Lane.WireName()}' " +
                "and may still run: is a consumer running, or is the lane paused?");
        }
        finally
        {
            await StopWatchingAsync(task.Id);
        }
    }

    /// <summary>Starts listening for a task's result (before it is submitted, so none is missed).</summary>
    public async Task<Task<ExternalTaskResult>> WatchResultAsync(string taskId, CancellationToken cancellationToken = default)
    {
        var queue = await EnsureReplyQueueAsync(cancellationToken);
        var completion = new TaskCompletionSource<ExternalTaskResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!_waiting.TryAdd(taskId, completion))
            throw new InvalidOperationException($"already waiting for task '{taskId}'");
        await _replyChannel!.QueueBindAsync(queue, BrokerNames.ResultsExchange, taskId, cancellationToken: cancellationToken);
        return completion.Task;
    }

    async Task StopWatchingAsync(string taskId)
    {
        _waiting.TryRemove(taskId, out _);
        if (_replyChannel is { IsOpen: true } channel && _replyQueue is { } queue)
            await channel.QueueUnbindAsync(queue, BrokerNames.ResultsExchange, taskId);
    }

    async Task<string> EnsureReplyQueueAsync(CancellationToken cancellationToken)
    {
        if (_replyQueue is { } existing)
            return existing;
        await _replyLock.WaitAsync(cancellationToken);
        try
        {
            if (_replyQueue is { } raced)
                return raced;
            var channel = await _connection.CreateChannelAsync(cancellationToken: cancellationToken);
            var declared = await channel.QueueDeclareAsync(
                $"lanequeue.replies.{Guid.NewGuid():N}", durable: false, exclusive: true, autoDelete: true, cancellationToken: cancellationToken);
            var consumer = new AsyncEventingBasicConsumer(channel);
            consumer.ReceivedAsync += (_, delivery) =>
            {
                OnResult(delivery.Body);
                return Task.CompletedTask;
            };
            await channel.BasicConsumeAsync(declared.QueueName, autoAck: true, consumer, cancellationToken);
            _replyChannel = channel;
            _replyQueue = declared.QueueName;
            return declared.QueueName;
        }
        finally
        {
            _replyLock.Release();
        }
    }

    void OnResult(ReadOnlyMemory<byte> body)
    {
        ExternalTaskResult result;
        try
        {
            result = TaskJson.Deserialize<ExternalTaskResult>(body.Span);
        }
        catch (JsonException)
        {
            return; // not a result we can read; results of other tasks never reach this queue.
        }
        if (_waiting.TryGetValue(result.TaskId, out var completion))
            completion.TrySetResult(result);
    }

    public async ValueTask DisposeAsync()
    {
        if (_replyChannel is not null)
            await _replyChannel.DisposeAsync();
        await _publishChannel.DisposeAsync();
        await _connection.DisposeAsync();
        _replyLock.Dispose();
        _publishLock.Dispose();
    }
}
