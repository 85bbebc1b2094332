using LaneQueue.Contracts;
using LaneQueue.Producer;
using MassTransit;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;

namespace LaneQueue.Consumer;

/// <summary>
/// The lane gate of one consumer process (queue-per-lane topology). Every <see cref="GateOptions.CheckIntervalMs"/>,
/// and at once whenever this process starts a higher-lane task, it reads each lane's ready count with a passive
/// queue.declare and lets <see cref="GatePolicy"/> decide which lower lanes to pause (basic.cancel) or resume
/// (basic.consume). Every process of the fleet runs the same gate against the same broker counts, so the whole
/// fleet pauses together.
/// </summary>
internal sealed class LaneGate(
    IOptions<LaneQueueOptions> options,
    LaneEndpoints endpoints,
    LaneActivity activity,
    ConsumerMetrics metrics,
    BrokerPublisher publisher,
    SlotBudget slots,
    ILogger<LaneGate> logger) : BackgroundService
{
    readonly SemaphoreSlim _wake = new(0, 1);
    readonly Dictionary<SessionLane, Task> _switching = [];
    DepthAlerts? _alerts;
    readonly List<LaneEvent> _laneEvents = [];
    int _checks;

    /// <summary>The latest ready counts read from the broker, by lane priority.</summary>
    public long[] LastReady => activity.Ready;

    public GatePolicy? Policy { get; private set; }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var settings = options.Value;
        if (settings.Topology != LaneTopology.QueuePerLane || !settings.Gate.Enabled)
            return;
        Policy = new GatePolicy(settings.Gate, settings.Queue.PriorityBoost);
        _alerts = new DepthAlerts(settings.Queue, logger, _laneEvents.Add);
        activity.TaskStarted += OnTaskStarted;
        // Wait for the lane endpoints, not for a healthy bus: a lane paused by an operator leaves the bus "degraded".
        await endpoints.AllReady.WaitAsync(stoppingToken);

        IConnection? connection = null;
        IChannel? channel = null;
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                try
                {
                    connection ??= await BrokerConnection.ConnectAsync(settings.RabbitMqUrl, $"{settings.ConsumerName}-gate", stoppingToken);
                    if (channel is not { IsOpen: true })
                    {
                        if (channel is not null)
                            await channel.DisposeAsync();
                        channel = await connection.CreateChannelAsync(cancellationToken: stoppingToken);
                    }
                    await CheckAsync(connection, channel, settings, stoppingToken);
                }
                catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
                {
                    Log.GateCheckFailed(logger, ex.Message);
                    await Task.Delay(TimeSpan.FromSeconds(1), stoppingToken);
                }
                await _wake.WaitAsync(settings.Gate.CheckIntervalMs, stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        finally
        {
            activity.TaskStarted -= OnTaskStarted;
            if (channel is not null)
                await channel.DisposeAsync();
            if (connection is not null)
                await connection.DisposeAsync();
        }
    }

    async Task CheckAsync(IConnection connection, IChannel channel, LaneQueueOptions settings, CancellationToken cancellationToken)
    {
        foreach (var lane in SessionLanes.All)
        {
            var declared = await channel.QueueDeclarePassiveAsync(BrokerNames.LaneQueue(lane), cancellationToken);
            LastReady[(int)lane] = declared.MessageCount;
            _alerts!.Lane(lane, declared.MessageCount);
        }
        if (_checks++ % 50 == 0)
            await CheckDeadLettersAsync(connection, cancellationToken);
        foreach (var laneEvent in _laneEvents)
        {
            await publisher.PublishAsync(BrokerNames.EventsExchange, BrokerNames.EventRoutingKey(laneEvent.Event, laneEvent.Lane),
                TaskJson.Serialize(laneEvent with { Consumer = settings.ConsumerName }), cancellationToken);
        }
        _laneEvents.Clear();
        var snapshot = new GateSnapshot(
            (long[])LastReady.Clone(),
            SessionLanes.All.Select(activity.LastStart).ToArray(),
            DateTimeOffset.UtcNow);
        foreach (var change in Policy!.Evaluate(snapshot))
            Switch(change, cancellationToken);
    }

    /// <summary>Dead-letter depths, on a channel of their own: a queue not declared yet must not disturb the lane checks.</summary>
    async Task CheckDeadLettersAsync(IConnection connection, CancellationToken cancellationToken)
    {
        await using var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
        foreach (var lane in SessionLanes.All)
        {
            try
            {
                var declared = await channel.QueueDeclarePassiveAsync(BrokerNames.DeadLetterQueue(BrokerNames.LaneQueue(lane)), cancellationToken);
                _alerts!.DeadLetters(lane, declared.MessageCount);
            }
            catch (RabbitMQ.Client.Exceptions.OperationInterruptedException)
            {
                return; // no dead letters yet (the queue appears with the first one); the channel is closed now
            }
        }
    }

    void Switch(GateChange change, CancellationToken cancellationToken)
    {
        // Stopping an endpoint waits for its running tasks, so each lane switches on its own task,
        // one switch at a time per lane, never holding up the checks.
        var previous = _switching.TryGetValue(change.Lane, out var running) ? running : Task.CompletedTask;
        _switching[change.Lane] = previous.ContinueWith(async _ =>
        {
            if (change.Pause)
            {
                Log.LanePaused(logger, change.Lane.WireName(), change.Reason);
                metrics.GatePaused(change.Lane);
                await endpoints.SetGatePauseAsync(change.Lane, change.Reason, cancellationToken);
            }
            else
            {
                await endpoints.SetGatePauseAsync(change.Lane, null, cancellationToken);
                Log.LaneResumed(logger, change.Lane.WireName(), change.Reason);
            }
        }, cancellationToken, TaskContinuationOptions.None, TaskScheduler.Default).Unwrap();
    }

    /// <summary>
    /// A higher-lane start checks the broker at once, but only when it can matter: the lane has just filled its own slots
    /// or the process's budget (more of it may be waiting at the broker) and some lower lane is still running or taking work.
    /// </summary>
    void OnTaskStarted(SessionLane lane)
    {
        var settings = options.Value;
        if (lane == SessionLane.Generate || (activity.Active(lane) < settings.Queue.MaxConcurrency(lane) && slots.InUse < slots.Capacity))
            return;
        if (SessionLanes.All.Where(lower => lower > lane).All(lower => endpoints.IsPaused(lower) && activity.Active(lower) == 0))
            return;
        try
        {
            _wake.Release();
        }
        catch (SemaphoreFullException)
        {
            // a check is already due
        }
    }

    public override void Dispose()
    {
        _wake.Dispose();
        base.Dispose();
    }
}
