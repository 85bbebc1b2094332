using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using LaneQueue.Contracts;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using RabbitMQ.Client.Exceptions;

namespace LaneQueue.Producer;

/// <summary>
/// Submits tasks to LaneQueue. A submit returns only after the broker has confirmed the message
/// (publisher confirms, persistent delivery, mandatory routing), so "accepted" means "stored"; the lane queues exist from
/// <see cref="ConnectAsync"/> on, so that holds before any consumer ever ran. Safe for concurrent use. Applications
/// usually inject <see cref="ILaneQueueProducer"/> (<see cref="ProducerRegistration"/>); scripts and the CLI connect here.
/// </summary>
public sealed class LaneQueueProducer : ILaneQueueProducer, IAsyncDisposable
{
    readonly ProducerOptions _options;
    readonly IConnection _connection;
    readonly ConfirmedPublisher _publisher;
    readonly ResultWaits _waiting = new();
    readonly SemaphoreSlim _replyLock = new(1, 1);
    IChannel? _replyChannel;
    string? _replyQueue;

    LaneQueueProducer(ProducerOptions options, IConnection connection)
    {
        _options = options;
        _connection = connection;
        _publisher = new ConfirmedPublisher(connection, options.RecoveryTimeout);
    }

    /// <summary>
    /// Connects to the broker and declares what producers and consumers share, idempotently: the exchanges and the lane
    /// queues of <see cref="ProducerOptions.Topology"/> with the arguments the consumers give them
    /// (<see cref="ProducerOptions.QuorumQueues"/>, <see cref="ProducerOptions.DeliveryLimit"/>), so a task submitted before
    /// any consumer ran waits in its lane. A user without configure permission (the producer user of
    /// <c>scripts/broker-users.sh</c>) declares nothing: the exchanges must exist, and the lanes are there once a consumer ran.
    /// </summary>
    /// <exception cref="ArgumentException">The options are invalid; the message names the setting.</exception>
    /// <exception cref="TaskRejectedException">The broker cannot be reached, or its lanes differ from the options (the
    /// message names the setting, e.g. <c>LaneQueue:QuorumQueues</c>, with both values).</exception>
    public static async Task<LaneQueueProducer> ConnectAsync(ProducerOptions? options = null, CancellationToken cancellationToken = default)
    {
        options = options is null ? new ProducerOptions() : options with { };
        if (ProducerOptionsValidator.Problems(options) is { Count: > 0 } problems)
            throw new ArgumentException(string.Join("; ", problems), nameof(options));
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
        try
        {
            await DeclareAsync(connection, options, cancellationToken);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
        return new LaneQueueProducer(options, connection);
    }

    static async Task DeclareAsync(IConnection connection, ProducerOptions options, CancellationToken cancellationToken)
    {
        try
        {
            await BrokerTopology.DeclareAsync(connection, options.HistoryMaxAge, options.HistoryMaxBytes, cancellationToken);
            await LaneQueueTopology.For(options).DeclareAsync(connection, cancellationToken);
        }
        catch (TopologyMismatchException ex)
        {
            throw new TaskRejectedException(ex.Message, ex);
        }
        catch (OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == 403)
        {
            // A producer-only user (scripts/broker-users.sh) may not declare: the exchanges must exist already, which a passive
            // declare checks without any permission.
            await using var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
            try
            {
                await channel.ExchangeDeclarePassiveAsync(BrokerNames.TasksExchange, cancellationToken);
                await channel.ExchangeDeclarePassiveAsync(BrokerNames.ResultsExchange, cancellationToken);
            }
            catch (OperationInterruptedException missing) when (missing.ShutdownReason?.ReplyCode == 404)
            {
                throw new TaskRejectedException(
                    $"the exchanges '{BrokerNames.TasksExchange}' and '{BrokerNames.ResultsExchange}' do not exist on the broker and this user " +
                    $"may not declare them ({ex.ShutdownReason?.ReplyText}): run scripts/broker-users.sh (it declares them) or start a consumer first.", missing);
            }
        }
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
        // A task with a session goes to its session's shard of the lane, when the lane is sharded (fair turns between sessions).
        var laneKey = SessionShards.RoutingKeyFor(task.Lane, task.SessionId, _options.SessionShards.GetValueOrDefault(task.Lane));
        activity?.SetTag("messaging.rabbitmq.destination.routing_key", laneKey);
        activity?.SetTag("lanequeue.task_id", task.Id);
        activity?.SetTag("lanequeue.lane", task.Lane.WireName());
        var headers = new Dictionary<string, object?>();
        LaneQueueTelemetry.Inject(activity, headers);
        var properties = TaskMessage.Properties(task, headers);
        var body = TaskJson.Serialize(task);
        var (exchange, routingKey) = (BrokerNames.TasksExchange, laneKey);
        if (DelayedUntil(task, DateTimeOffset.UtcNow) is { } due)
        {
            // Delayed: into the delay tree, which hands it to its lane when due (no consumer holds it meanwhile). A debounced task
            // goes to its lane with its due time instead: the consumer that reads it records it as its key's latest first, then
            // parks it in the tree (as for any other language's client).
            if (!task.Debounced)
                (exchange, routingKey) = (DelayTopology.EntryExchange, DelayTopology.RoutingKey(due.Wait, laneKey));
            properties = DelayTopology.Entering(properties, due.At);
            activity?.SetTag("lanequeue.delay_ms", (long)due.Wait.TotalMilliseconds);
        }
        try
        {
            await _publisher.PublishAsync(exchange, routingKey, properties, body, cancellationToken);
            LaneQueueTelemetry.CountSubmitted(task.Lane);
        }
        catch (PublishException ex) when (ex.IsReturn)
        {
            throw new TaskRejectedException(
                $"task '{task.Id}' was not routed: no queue is bound to lane '{task.Lane.WireName()}' on exchange " +
                $"'{exchange}'. The producer declares the lane queues (and the delay tree of delayed tasks) when it connects, unless its user may not " +
                "(then a consumer declares them when it starts); was the queue deleted, or is the vhost in the broker URL the consumers' one?", ex);
        }
        catch (PublishException ex)
        {
            throw new TaskRejectedException($"the broker refused task '{task.Id}' (nack); it was not stored, submit it again.", ex);
        }
        catch (TimeoutException ex)
        {
            throw Unreachable($"task '{task.Id}'", ex);
        }
        catch (Exception ex) when (exchange == DelayTopology.EntryExchange
            && (ex as OperationInterruptedException ?? ex.InnerException as OperationInterruptedException)?.ShutdownReason?.ReplyCode is 403 or 404)
        {
            throw new TaskRejectedException(
                $"delayed task '{task.Id}' was not stored: the delay tree ('{DelayTopology.EntryExchange}') is missing or this user may not publish " +
                "to it. It is declared by a producer whose user may declare, or by a consumer when it starts; scripts/broker-users.sh lets the " +
                $"producer user publish to it. ({ex.Message})", ex);
        }
    }

    /// <summary>
    /// When a delayed task is due and how long that is from <paramref name="now"/>, or null when it is due now (not delayed, or
    /// <c>not_before</c> passed). <c>delay_ms</c> counts from the submit (this publish), <c>not_before</c> is a time.
    /// </summary>
    internal static (DateTimeOffset At, TimeSpan Wait)? DelayedUntil(ExternalTask task, DateTimeOffset now)
    {
        var at = task.NotBefore ?? (task.DelayMs is { } delay ? now.AddMilliseconds(delay) : null);
        return at is { } due && due > now ? (due, due - now) : null;
    }

    TaskRejectedException Unreachable(string what, TimeoutException timeout) => new(
        $"could not submit {what}: the broker at {BrokerConnection.Redact(_options.RabbitMqUrl)} has not been reachable for " +
        $"{_options.RecoveryTimeout.TotalSeconds:0.#} s ({timeout.InnerException?.Message ?? timeout.Message}). It may or may not be stored: submit it again with the same id " +
        "(consumers skip an id that already ran).", timeout);

    /// <summary>The broker connection, for readers in other LaneQueue libraries (the dashboard's heartbeat listener and stats).</summary>
    internal IConnection Connection => _connection;

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

    /// <inheritdoc />
    public Task<TaskHistory> GetTaskHistoryAsync(string taskId, TimeSpan? lookBack = null, CancellationToken cancellationToken = default) =>
        TaskHistoryReader.ReadAsync(_connection, taskId, lookBack, cancellationToken);

    /// <inheritdoc />
    public Task<IReadOnlyList<PendingExternalTask>> GetPendingExternalTasksAsync(CancellationToken cancellationToken = default) =>
        GetPendingExternalTasksAsync(null, cancellationToken);

    /// <summary>The pending External-lane tasks the consumers report in the heartbeats heard over <paramref name="listen"/> (default 2.5 s).</summary>
    public async Task<IReadOnlyList<PendingExternalTask>> GetPendingExternalTasksAsync(TimeSpan? listen, CancellationToken cancellationToken = default) =>
        FleetStats.PendingExternal(await FleetStats.HeartbeatsAsync(_connection, listen ?? TimeSpan.FromMilliseconds(2500), cancellationToken));

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

    /// <inheritdoc />
    public Task InterruptSessionAsync(string sessionId, bool cancel = false, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(sessionId);
        return SendFleetCommandAsync(FleetCommands.Interrupt(sessionId, cancel), cancellationToken);
    }

    /// <summary>
    /// Adds a recurring schedule, or replaces the one with its id (the fleet monitor fires it from its first due time after
    /// now). Lasting fleet state: needs a user that may send fleet commands (the admin user of scripts/broker-users.sh).
    /// </summary>
    /// <exception cref="InvalidScheduleException">The schedule is invalid; names the field (e.g. <c>cron</c>, <c>time_zone</c>).</exception>
    public Task AddScheduleAsync(TaskSchedule schedule, CancellationToken cancellationToken = default) =>
        SendFleetCommandAsync(ScheduleCommands.Put(schedule, _options.MaxPayloadBytes), cancellationToken);

    /// <summary>Pauses a schedule: no firings until <see cref="ResumeScheduleAsync"/>.</summary>
    public Task PauseScheduleAsync(string scheduleId, CancellationToken cancellationToken = default) =>
        SendFleetCommandAsync(ScheduleCommands.For(FleetCommand.SchedulePause, scheduleId), cancellationToken);

    /// <summary>Resumes a paused schedule; the due times missed meanwhile follow its catch-up policy.</summary>
    public Task ResumeScheduleAsync(string scheduleId, CancellationToken cancellationToken = default) =>
        SendFleetCommandAsync(ScheduleCommands.For(FleetCommand.ScheduleResume, scheduleId), cancellationToken);

    /// <summary>Removes a schedule (its firings already published still run).</summary>
    public Task RemoveScheduleAsync(string scheduleId, CancellationToken cancellationToken = default) =>
        SendFleetCommandAsync(ScheduleCommands.For(FleetCommand.ScheduleRemove, scheduleId), cancellationToken);

    /// <summary>The schedules with their next due time and last firing (reads the fleet state and the firings streams).</summary>
    public Task<IReadOnlyList<ScheduleInfo>> ListSchedulesAsync(CancellationToken cancellationToken = default) =>
        ScheduleReader.ListAsync(_connection, DateTimeOffset.UtcNow, cancellationToken);

    /// <summary>Publishes a fleet command (kept in the fleet log so consumers that start later apply it too).</summary>
    public async Task SendFleetCommandAsync(FleetCommand command, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(command);
        // Pause, resume and handler modes are lasting state (kept without an age limit); the rest only needs the day-long log.
        var exchange = BrokerNames.IsFleetState(command.Command) ? BrokerNames.FleetState : BrokerNames.FleetExchange;
        await PublishConfirmedAsync(exchange, "", TaskJson.Serialize(command), $"fleet command '{command.Command}'", cancellationToken);
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
            await _publisher.PublishAsync(exchange, routingKey, new BasicProperties { Persistent = true, ContentType = "application/json" }, body, cancellationToken);
        }
        catch (PublishException ex)
        {
            throw new TaskRejectedException($"the broker did not take the {what}: {(ex.IsReturn ? "unroutable" : "nacked")}", ex);
        }
        catch (TimeoutException ex)
        {
            throw Unreachable("the " + what, ex);
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
            await StopWatchingResultAsync(task.Id);
        }
    }

    /// <summary>Starts listening for a task's result (before it is submitted, so none is missed).</summary>
    public async Task<Task<ExternalTaskResult>> WatchResultAsync(string taskId, CancellationToken cancellationToken = default)
    {
        var queue = await EnsureReplyQueueAsync(cancellationToken);
        var (result, first) = _waiting.Add(taskId);
        if (first)
            await _replyChannel!.QueueBindAsync(queue, BrokerNames.ResultsExchange, taskId, cancellationToken: cancellationToken);
        return result;
    }

    /// <inheritdoc />
    public async Task StopWatchingResultAsync(string taskId)
    {
        if (_waiting.Remove(taskId) && _replyChannel is { IsOpen: true } channel && _replyQueue is { } queue)
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
        _waiting.Complete(result, forget: false);
    }

    public async ValueTask DisposeAsync()
    {
        if (_replyChannel is not null)
            await _replyChannel.DisposeAsync();
        await _publisher.DisposeAsync();
        await _connection.DisposeAsync();
        _replyLock.Dispose();
    }
}
