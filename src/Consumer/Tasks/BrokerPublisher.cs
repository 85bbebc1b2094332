using LaneQueue.Contracts;
using LaneQueue.Producer;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;

namespace LaneQueue.Consumer;

/// <summary>
/// The consumer's one publishing path (MassTransit only receives), on one connection of its own: results and
/// re-published tasks (into the delay tree for a retry, or back to their lane with a checkpoint) confirmed before the delivery is
/// acked, through the shared <see cref="ConfirmedPublisher"/> (which waits for the connection's recovery, up to
/// <see cref="LaneQueueOptions.RecoveryTimeoutSeconds"/>); lifecycle events, lane events and heartbeats best effort, on a
/// second channel without a confirm wait; the lifecycle events' history copies in batches (<see cref="HistoryBatches"/>).
/// </summary>
internal sealed class BrokerPublisher(IOptions<LaneQueueOptions> options) : IFleetCommands, IAsyncDisposable
{
    readonly SemaphoreSlim _open = new(1, 1);
    IConnection? _connection;
    ConfirmedPublisher? _confirmed;
    IChannel? _events;

    /// <summary>The confirmed path; the connection is opened on first use and recovers by itself after that.</summary>
    async Task<ConfirmedPublisher> ConfirmedAsync(CancellationToken cancellationToken)
    {
        if (_confirmed is { } confirmed)
            return confirmed;
        await _open.WaitAsync(cancellationToken);
        try
        {
            return _confirmed ??= new ConfirmedPublisher(await ConnectionAsync(cancellationToken), TimeSpan.FromSeconds(options.Value.RecoveryTimeoutSeconds));
        }
        finally
        {
            _open.Release();
        }
    }

    /// <summary>The best-effort channel (no confirms), opened again when it was closed.</summary>
    async Task<IChannel> EventsAsync(CancellationToken cancellationToken)
    {
        if (_events is { IsOpen: true } events)
            return events;
        await _open.WaitAsync(cancellationToken);
        try
        {
            if (_events is not { IsOpen: true })
                _events = await (await ConnectionAsync(cancellationToken)).CreateChannelAsync(cancellationToken: cancellationToken);
            return _events;
        }
        finally
        {
            _open.Release();
        }
    }

    /// <summary>Called under <c>_open</c>.</summary>
    async Task<IConnection> ConnectionAsync(CancellationToken cancellationToken) =>
        _connection ??= await BrokerConnection.ConnectAsync(options.Value.RabbitMqUrl, $"{options.Value.ConsumerName}-publisher", cancellationToken);

    /// <summary>Publishes a transient message on the events channel (no confirm wait), e.g. a heartbeat.</summary>
    public async Task PublishAsync(string exchange, string routingKey, byte[] body, CancellationToken cancellationToken = default)
    {
        var events = await EventsAsync(cancellationToken);
        await events.BasicPublishAsync(exchange, routingKey, mandatory: false, new BasicProperties { ContentType = "application/json" }, body, cancellationToken);
    }

    /// <summary>
    /// Publishes a lifecycle event to <see cref="BrokerNames.EventsExchange"/> for its subscribers, and hands it to the task
    /// history (<see cref="HistoryBatches"/>) unless it is <c>command.completed</c>, whose <c>completed</c> result the history
    /// already holds. Best effort: while this connection is down (broker restart, network cut) the event is dropped rather
    /// than failing the task it describes.
    /// </summary>
    public async Task PublishEventAsync(TaskEvent taskEvent, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(taskEvent);
        var body = TaskJson.Serialize(taskEvent);
        var inBatch = taskEvent.Event != TaskEvent.Completed;
        if (inBatch)
            History.Add(body, urgent: taskEvent.Event != TaskEvent.Started);
        try
        {
            var events = await EventsAsync(cancellationToken);
            await events.BasicPublishAsync(BrokerNames.EventsExchange, BrokerNames.EventRoutingKey(taskEvent.Event, taskEvent.Lane), mandatory: false,
                EventProperties(taskEvent, inBatch), body, cancellationToken);
        }
        catch (Exception ex) when (BrokerConnection.IsConnectionFailure(ex) && !cancellationToken.IsCancellationRequested)
        {
            Interlocked.Increment(ref _droppedEvents);
        }
    }

    /// <summary>An event's properties on <see cref="BrokerNames.EventsExchange"/>; <paramref name="inBatch"/>: its history copy goes in a batch.</summary>
    public static BasicProperties EventProperties(TaskEvent taskEvent, bool inBatch) => new()
    {
        ContentType = "application/json",
        Type = taskEvent.Event,
        AppId = taskEvent.Consumer,
        // A new table each time: the client's trace-context injection may add to it.
        Headers = new Dictionary<string, object?> { [BrokerNames.HistoryCopyHeader] = inBatch ? "batch" : "result" },
    };

    /// <summary>A result's properties on <see cref="BrokerNames.ResultsExchange"/> (persistent; routing key = the task id).</summary>
    public static BasicProperties ResultProperties(ExternalTaskResult result, string consumer) => new()
    {
        Persistent = true,
        ContentType = "application/json",
        MessageId = Guid.NewGuid().ToString("N"),
        CorrelationId = result.TaskId,
        Type = "lanequeue.result",
        AppId = consumer,
    };

    /// <summary>Lifecycle events dropped because the broker could not be reached (on the events exchange or in the history).</summary>
    public long DroppedEvents => Interlocked.Read(ref _droppedEvents) + (_history?.Dropped ?? 0);

    long _droppedEvents;

    HistoryBatches? _history;

    HistoryBatches History => LazyInitializer.EnsureInitialized(ref _history, () => new HistoryBatches(HistoryChannelAsync, options.Value.ConsumerName));

    /// <summary>A new channel with publisher confirms for the history batches (their confirm paces the next batch).</summary>
    async Task<IChannel> HistoryChannelAsync(CancellationToken cancellationToken)
    {
        IConnection connection;
        await _open.WaitAsync(cancellationToken);
        try
        {
            connection = await ConnectionAsync(cancellationToken);
        }
        finally
        {
            _open.Release();
        }
        return await connection.CreateChannelAsync(new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true),
            cancellationToken);
    }

    /// <summary>Runs a confirmed operation through the shared recovery loop (<see cref="ConfirmedPublisher.RunAsync"/>).</summary>
    internal async Task WithRecoveryAsync(Func<IChannel, Task> publish, CancellationToken cancellationToken)
    {
        var confirmed = await ConfirmedAsync(cancellationToken);
        await confirmed.RunAsync(publish, cancellationToken);
    }

    /// <summary>
    /// Parks a task for <paramref name="delay"/> before it is looked at again (a retry, a hold): into the delay tree
    /// (<see cref="DelayTopology"/>), whose quorum hop queues hand it back to its lane, or its session's shard, at least once,
    /// never early (the delay plus the tree's margin, rounded up to its 50 ms hops). No consumer slot is held meanwhile.
    /// Up to 1.3 it waited in a classic holding queue per lane and delay (<c>lanequeue.&lt;lane&gt;.retry.&lt;ms&gt;ms</c>), which
    /// dead-letters at most once: a broker that stopped or died mid-move could drop it.
    /// </summary>
    public Task ScheduleRetryAsync(ExternalTask task, TimeSpan delay, BasicProperties properties, CancellationToken cancellationToken = default) =>
        PublishDelayedAsync(task, delay, DelayTopology.Entering(properties, DateTimeOffset.UtcNow + delay), cancellationToken);

    /// <summary>
    /// Publishes a task's result to <see cref="BrokerNames.ResultsExchange"/> with the task id as routing key, confirmed (the
    /// delivery is acked only after this returns). Not mandatory: nobody may be listening for this id.
    /// </summary>
    public async Task PublishResultAsync(ExternalTaskResult result, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(result);
        var properties = ResultProperties(result, options.Value.ConsumerName);
        var body = TaskJson.Serialize(result);
        await WithRecoveryAsync(confirmed => confirmed.BasicPublishAsync(BrokerNames.ResultsExchange, result.TaskId, mandatory: false, properties, body, cancellationToken).AsTask(),
            cancellationToken);
    }

    /// <summary>Publishes a fleet command (an interrupt a control-lane task asked for) to <see cref="BrokerNames.FleetExchange"/>, confirmed.</summary>
    public async Task SendAsync(FleetCommand command, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(command);
        var body = TaskJson.Serialize(command);
        await WithRecoveryAsync(confirmed => PublishConfirmedAsync(confirmed, BrokerNames.FleetExchange, "", new BasicProperties { Persistent = true, ContentType = "application/json" },
            body, cancellationToken, "fleet command"), cancellationToken);
    }

    /// <summary>
    /// Puts a task back at the tail of its lane (a preempted task with its checkpoint, or a redrive); a task of a session in a
    /// sharded lane back in its session's shard.
    /// </summary>
    public async Task RequeueAsync(ExternalTask task, BasicProperties properties, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(task);
        await WithRecoveryAsync(confirmed => PublishConfirmedAsync(confirmed, BrokerNames.TasksExchange, LaneKey(task), properties,
            TaskJson.Serialize(task), cancellationToken), cancellationToken);
    }

    /// <summary>Where a task goes back to: its session's shard of the lane (<see cref="LaneQueueOptions.SessionShards"/>), or the lane.</summary>
    string LaneKey(ExternalTask task) => SessionShards.RoutingKeyFor(task.Lane, task.SessionId, options.Value.ShardsOf(task.Lane));

    /// <summary>
    /// Publishes a delayed task into the delay tree (<see cref="DelayTopology"/>) for <paramref name="wait"/>: the broker hands it
    /// to its lane when due. Confirmed (the delivery is acked only after this returns).
    /// </summary>
    public async Task PublishDelayedAsync(ExternalTask task, TimeSpan wait, BasicProperties properties, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(task);
        await WithRecoveryAsync(confirmed => PublishConfirmedAsync(confirmed, DelayTopology.EntryExchange, DelayTopology.RoutingKey(wait, LaneKey(task)), properties,
            TaskJson.Serialize(task), cancellationToken), cancellationToken);
    }

    static async Task PublishConfirmedAsync(IChannel channel, string exchange, string routingKey, BasicProperties properties, byte[] body, CancellationToken cancellationToken,
        string what = "re-published task")
    {
        try
        {
            await channel.BasicPublishAsync(exchange, routingKey, mandatory: true, properties, body, cancellationToken);
        }
        catch (PublishException ex)
        {
            throw new InvalidOperationException($"the broker did not store the {what} ({(ex.IsReturn ? "unroutable" : "nacked")}); the original stays unacked", ex);
        }
    }

    /// <summary>
    /// Properties for a re-published task: the delivery's headers (the producer's, trace context included) plus the attempt
    /// count. The broker's delivery count belongs to the copy it was set on, and a new copy starts with no crashes (only a
    /// crash suspect's hold carries them on: <see cref="TaskOutcome.HoldAsync"/>).
    /// </summary>
    public static BasicProperties PropertiesFor(ExternalTask task, IReadOnlyBasicProperties? original, int attempt, string? lastError)
    {
        ArgumentNullException.ThrowIfNull(task);
        var headers = new Dictionary<string, object?>();
        if (original?.Headers is { } existing)
        {
            foreach (var (key, value) in existing)
            {
                if (key is not (BrokerNames.AttemptHeader or BrokerNames.LastErrorHeader or BrokerNames.DeliveryCountHeader or BrokerNames.CrashesHeader))
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
        if (_history is not null)
            await _history.DisposeAsync();
        if (_confirmed is not null)
            await _confirmed.DisposeAsync();
        if (_events is not null)
            await _events.DisposeAsync();
        if (_connection is not null)
            await _connection.DisposeAsync();
        _open.Dispose();
    }
}
