using System.Text.Json;
using LaneQueue.Contracts;
using LaneQueue.Producer;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace LaneQueue.Consumer;

/// <summary>
/// Keeps this consumer in step with the fleet: replays the lasting fleet state (<see cref="BrokerNames.FleetState"/>:
/// pauses, handler modes, kept without an age limit), replays and follows the fleet command stream
/// (<see cref="BrokerNames.FleetLog"/>: cancellations, drains and the same state commands, for a day), and, with
/// <see cref="LaneQueueOptions.FleetDeduplication"/>, follows the other consumers' <c>command.*</c> events so a task id that
/// runs or ran elsewhere is not run twice. Starts before the
/// bus, and waits for the replay, so no task is taken before the commands issued earlier are known. A state command
/// arrives through both streams: for each lane the newest pause/resume and the newest handler mode win, by their time.
/// </summary>
internal sealed class FleetListener(
    IOptions<LaneQueueOptions> options,
    TaskLedger ledger,
    RunningTasks running,
    LaneModes modes,
    LaneEndpoints endpoints,
    LaneSlots slots,
    ScheduleTable schedules,
    IHostApplicationLifetime lifetime,
    ILogger<FleetListener> logger) : IHostedService, IAsyncDisposable
{
    static readonly string[] FollowedEvents = [TaskEvent.Started, TaskEvent.Completed, TaskEvent.Preempted, TaskEvent.DeadLettered, TaskEvent.Cancelled, TaskEvent.Failed];

    readonly DateTimeOffset _startedAt = DateTimeOffset.UtcNow;
    readonly Dictionary<(SessionLane Lane, bool Pause), DateTimeOffset> _stateAt = [];
    IConnection? _connection;
    long _lastDeliveryTicks;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var settings = options.Value;
        _connection = await BrokerConnection.ConnectAsync(settings.RabbitMqUrl, $"{settings.ConsumerName}-fleet", cancellationToken);

        var commands = await _connection.CreateChannelAsync(cancellationToken: cancellationToken);
        await commands.BasicQosAsync(0, 500, false, cancellationToken);
        var commandConsumer = new AsyncEventingBasicConsumer(commands);
        commandConsumer.ReceivedAsync += async (_, delivery) =>
        {
            Interlocked.Exchange(ref _lastDeliveryTicks, DateTime.UtcNow.Ticks);
            await OnCommandAsync(delivery.Body);
            await commands.BasicAckAsync(delivery.DeliveryTag, false);
        };
        await commands.BasicConsumeAsync(BrokerNames.FleetState, autoAck: false, $"{settings.ConsumerName}-fleet-state", noLocal: false, exclusive: false,
            new Dictionary<string, object?> { ["x-stream-offset"] = "first" }, commandConsumer, cancellationToken);
        await commands.BasicConsumeAsync(BrokerNames.FleetLog, autoAck: false, $"{settings.ConsumerName}-fleet-log", noLocal: false, exclusive: false,
            new Dictionary<string, object?> { ["x-stream-offset"] = "first" }, commandConsumer, cancellationToken);

        if (settings.FleetDeduplication)
            await FollowEventsAsync(settings, cancellationToken);

        // Wait for the replay of earlier commands to go quiet (bounded), so the first tasks already see them.
        var deadline = DateTime.UtcNow.AddSeconds(5);
        await Task.Delay(150, cancellationToken);
        while (DateTime.UtcNow < deadline && DateTime.UtcNow.Ticks - Interlocked.Read(ref _lastDeliveryTicks) < TimeSpan.FromMilliseconds(150).Ticks)
            await Task.Delay(50, cancellationToken);
    }

    /// <summary>
    /// With <see cref="LaneQueueOptions.FleetDeduplication"/>: a queue of this consumer's own that receives the fleet's
    /// <c>command.*</c> events, for the ledger. Two deliveries per task per consumer.
    /// </summary>
    async Task FollowEventsAsync(LaneQueueOptions settings, CancellationToken cancellationToken)
    {
        var events = await _connection!.CreateChannelAsync(cancellationToken: cancellationToken);
        var name = $"lanequeue.fleet-events.{settings.ConsumerName}.{Guid.NewGuid():N}";
        var queue = (await events.QueueDeclareAsync(name.Length > 200 ? name[..200] : name,
            durable: false, exclusive: true, autoDelete: true, cancellationToken: cancellationToken)).QueueName;
        foreach (var kind in FollowedEvents)
            await events.QueueBindAsync(queue, BrokerNames.EventsExchange, kind + ".*", cancellationToken: cancellationToken);
        var eventConsumer = new AsyncEventingBasicConsumer(events);
        eventConsumer.ReceivedAsync += (_, delivery) =>
        {
            // Our own events come back too (a topic binding cannot leave the publisher out): app-id says whose it is, so they are
            // dropped unread; our own runs are recorded where they happen, in order.
            if (delivery.BasicProperties.AppId != settings.ConsumerName)
                OnEvent(delivery.Body, settings.ConsumerName);
            return Task.CompletedTask;
        };
        await events.BasicConsumeAsync(queue, autoAck: true, eventConsumer, cancellationToken);
    }

    async Task OnCommandAsync(ReadOnlyMemory<byte> body)
    {
        FleetCommand command;
        try
        {
            command = TaskJson.Deserialize<FleetCommand>(body.Span);
        }
        catch (JsonException ex)
        {
            Log.FleetCommandIgnored(logger, ex.Message);
            return;
        }
        if (BrokerNames.IsScheduleCommand(command.Command))
        {
            // Recurring schedules: the table keeps the newest command per schedule id (each arrives through both streams).
            if (schedules.Apply(command))
                Log.FleetCommandApplied(logger, command.Command, command.ScheduleId ?? command.Schedule?.Id ?? "", 0);
            return;
        }
        if (BrokerNames.IsFleetState(command.Command) && !IsNewestState(command))
            return; // seen already, through the other stream, or older than a state already applied
        if (ledger.Apply(command))
        {
            var cancelled = running.CancelWhere(ledger.IsCancelled);
            Log.FleetCommandApplied(logger, command.Command, command.TaskId ?? command.SessionId ?? "", cancelled);
        }
        else if (command.Command == FleetCommand.Interrupt && command.SessionId is { Length: > 0 } session)
        {
            var asked = running.Interrupt(session, command.At, command.Mode == FleetCommand.InterruptCancel);
            Log.SessionInterrupted(logger, session, command.Mode ?? FleetCommand.InterruptYield, asked);
        }
        else if (modes.Apply(command))
        {
            Log.FleetCommandApplied(logger, command.Command, command.Lane ?? "", 0);
        }
        else if (command.Command is FleetCommand.Pause or FleetCommand.Resume && SessionLanes.TryParse(command.Lane, out var lane))
        {
            // Replayed in order, so the last pause or resume of a lane wins, also for consumers that start later.
            if (lifetime.ApplicationStopping.IsCancellationRequested)
                return; // stopping: no endpoint is to be started again
            // The scheduler first: the lane's waiting deliveries go back to their lane before its endpoint stops.
            if (options.Value.Topology == LaneTopology.QueuePerLane)
                slots.SetPaused(lane.Value, command.Command == FleetCommand.Pause);
            await endpoints.SetOperatorPauseAsync(lane.Value, command.Command == FleetCommand.Pause, lifetime.ApplicationStopping);
            Log.FleetCommandApplied(logger, command.Command, lane.Value.WireName(), 0);
        }
        else if (command.Command == FleetCommand.Drain && command.Consumer == options.Value.ConsumerName && command.At > _startedAt)
        {
            Log.FleetCommandApplied(logger, command.Command, command.Consumer, 0);
            lifetime.StopApplication();
        }
    }

    /// <summary>Whether a pause/resume or handler-mode command is the newest seen for its lane (and records it).</summary>
    bool IsNewestState(FleetCommand command)
    {
        if (!SessionLanes.TryParse(command.Lane, out var lane))
            return true; // let the appliers ignore it as they always have
        var key = (lane.Value, command.Command != FleetCommand.SetHandler);
        lock (_stateAt)
        {
            if (_stateAt.TryGetValue(key, out var applied) && command.At <= applied)
                return false;
            _stateAt[key] = command.At;
            return true;
        }
    }

    void OnEvent(ReadOnlyMemory<byte> body, string self)
    {
        TaskEvent taskEvent;
        try
        {
            taskEvent = TaskJson.Deserialize<TaskEvent>(body.Span);
        }
        catch (JsonException)
        {
            return;
        }
        if (taskEvent.Consumer == self)
            return; // our own runs are recorded where they happen, in order
        ledger.Record(taskEvent.TaskId, taskEvent.Event switch
        {
            TaskEvent.Started => TaskLedger.Known.Running,
            TaskEvent.Completed or TaskEvent.Cancelled => TaskLedger.Known.Completed,
            _ => TaskLedger.Known.Unknown, // preempted, failed (retried or dead-lettered): the id may legitimately run again
        }, taskEvent.Consumer);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async ValueTask DisposeAsync()
    {
        if (_connection is not null)
            await _connection.DisposeAsync();
    }
}
