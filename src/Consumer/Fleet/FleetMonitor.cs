using LaneQueue.Contracts;
using LaneQueue.Producer;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace LaneQueue.Consumer;

/// <summary>
/// The one consumer of the fleet that reads the lane depths (queue-per-lane topology with the gate on). Every consumer
/// takes part in an election on <see cref="BrokerNames.FleetMonitorQueue"/>, a single-active-consumer queue holding one
/// token message: the broker delivers the token only to the active consumer, which keeps it unacked for as long as it is
/// the monitor. When its connection closes (stop, crash, kill -9, network loss) the broker returns the token and delivers
/// it to the next consumer, which takes over at once. The monitor reads each lane's ready count with a passive
/// queue.declare every <see cref="GateOptions.CheckIntervalMs"/> (and at once when its own process starts a higher-lane
/// task), raises the depth alerts and lane events for the fleet (<see cref="DepthAlerts"/>), and broadcasts the ready counts
/// (<see cref="LaneStates"/>) that every consumer's <see cref="LaneGate"/> hands to its scheduler: when a lane gains or loses
/// ready work (<see cref="GateOptions.PauseAtReady"/>), and every <see cref="RefreshInterval"/>. Each consumer decides for
/// itself what the counts mean for its free slots (<see cref="LaneScheduler"/>). The broker's cost of the poll is the same
/// for 1 consumer or 100.
/// </summary>
internal sealed class FleetMonitor(
    IOptions<LaneQueueOptions> options,
    LaneEndpoints endpoints,
    LaneActivity activity,
    LaneSlots slots,
    BrokerPublisher publisher,
    ILogger<FleetMonitor> logger) : BackgroundService
{
    /// <summary>The longest the lane states go unsent while nothing changes.</summary>
    public static readonly TimeSpan RefreshInterval = TimeSpan.FromSeconds(1);

    readonly SemaphoreSlim _wake = new(0, 1);
    int _isMonitor;
    int _elections;

    /// <summary>Whether this process is the fleet monitor now.</summary>
    public bool IsMonitor => Volatile.Read(ref _isMonitor) == 1;

    /// <summary>How many times this process has become the monitor.</summary>
    public int Elections => Volatile.Read(ref _elections);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var settings = options.Value;
        if (settings.Topology != LaneTopology.QueuePerLane || !settings.Gate.Enabled)
            return;
        // A process whose lane endpoints never come up must not become the monitor.
        await endpoints.AllReady.WaitAsync(stoppingToken);
        activity.TaskStarted += OnTaskStarted;
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                try
                {
                    await CampaignAsync(settings, stoppingToken);
                }
                catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
                {
                    if (IsMonitor)
                        Log.MonitorLost(logger, settings.ConsumerName, ex.Message);
                    else
                        Log.GateCheckFailed(logger, ex.Message);
                    Volatile.Write(ref _isMonitor, 0);
                    await Task.Delay(TimeSpan.FromSeconds(1), stoppingToken);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        finally
        {
            activity.TaskStarted -= OnTaskStarted;
            Volatile.Write(ref _isMonitor, 0);
        }
    }

    /// <summary>
    /// One connection's life: joins the election, waits for the token, then monitors until the connection or channel closes.
    /// The connection does not recover by itself: a new one joins the election again (a recovered consumer could hold a
    /// token it no longer knows about).
    /// </summary>
    async Task CampaignAsync(LaneQueueOptions settings, CancellationToken stoppingToken)
    {
        var factory = BrokerConnection.Factory(settings.RabbitMqUrl, $"{settings.ConsumerName}-monitor");
        factory.AutomaticRecoveryEnabled = false;
        factory.TopologyRecoveryEnabled = false;
        await using var connection = await factory.CreateConnectionAsync(BrokerConnection.Endpoints(settings.RabbitMqUrl), factory.ClientProvidedName, stoppingToken);
        await using var election = await connection.CreateChannelAsync(cancellationToken: stoppingToken);
        var closed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var elected = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        election.ChannelShutdownAsync += (_, reason) =>
        {
            closed.TrySetResult();
            return Task.CompletedTask;
        };
        await election.BasicQosAsync(0, 1, false, stoppingToken);
        await election.QueueDeclareAsync(BrokerNames.FleetMonitorQueue, durable: false, exclusive: false, autoDelete: false,
            new Dictionary<string, object?> { ["x-single-active-consumer"] = true, ["x-max-length"] = 1 }, cancellationToken: stoppingToken);
        // A token for the election (x-max-length keeps at most one waiting; the one the monitor holds is not counted).
        await election.BasicPublishAsync("", BrokerNames.FleetMonitorQueue, mandatory: false, new BasicProperties(),
            System.Text.Encoding.UTF8.GetBytes(settings.ConsumerName), stoppingToken);
        var candidate = new AsyncEventingBasicConsumer(election);
        candidate.ReceivedAsync += (_, _) =>
        {
            elected.TrySetResult(); // kept unacked: holding it is being the monitor
            return Task.CompletedTask;
        };
        await election.BasicConsumeAsync(BrokerNames.FleetMonitorQueue, autoAck: false, candidate, stoppingToken);

        if (await Task.WhenAny(elected.Task, closed.Task).WaitAsync(stoppingToken) != elected.Task)
            throw new InvalidOperationException("the election channel closed");
        Interlocked.Increment(ref _elections);
        Volatile.Write(ref _isMonitor, 1);
        Log.MonitorElected(logger, settings.ConsumerName);
        await using var poll = await connection.CreateChannelAsync(cancellationToken: stoppingToken);
        await MonitorAsync(connection, poll, settings, closed.Task, stoppingToken);
        Volatile.Write(ref _isMonitor, 0);
        if (!stoppingToken.IsCancellationRequested)
            Log.MonitorLost(logger, settings.ConsumerName, "the election channel closed");
    }

    async Task MonitorAsync(IConnection connection, IChannel poll, LaneQueueOptions settings, Task closed, CancellationToken stoppingToken)
    {
        var lanes = SessionLanes.All;
        var laneEvents = new List<LaneEvent>();
        var alerts = new DepthAlerts(settings.Queue, logger, laneEvents.Add);
        var ready = new long[lanes.Count];
        var hadWork = new bool?[lanes.Count];
        var lastBroadcast = DateTimeOffset.MinValue;
        for (var checks = 0; !closed.IsCompleted && !stoppingToken.IsCancellationRequested; checks++)
        {
            var now = DateTimeOffset.UtcNow;
            var changed = false;
            foreach (var lane in lanes)
            {
                var i = (int)lane;
                ready[i] = (await poll.QueueDeclarePassiveAsync(BrokerNames.LaneQueue(lane), stoppingToken)).MessageCount;
                for (var shard = 0; shard < settings.ShardsOf(lane); shard++) // the lane's session shards wait there too
                    ready[i] += (await poll.QueueDeclarePassiveAsync(SessionShards.Queue(lane, shard), stoppingToken)).MessageCount;
                var hasWork = ready[i] >= settings.Gate.PauseAtReady;
                changed |= hadWork[i] != hasWork;
                hadWork[i] = hasWork;
                alerts.Lane(lane, ready[i]);
            }
            if (checks % 50 == 0)
                await CheckDeadLettersAsync(connection, alerts, stoppingToken);
            foreach (var laneEvent in laneEvents)
            {
                await publisher.PublishAsync(BrokerNames.EventsExchange, BrokerNames.EventRoutingKey(laneEvent.Event, laneEvent.Lane),
                    TaskJson.Serialize(laneEvent with { Consumer = settings.ConsumerName }), stoppingToken);
            }
            laneEvents.Clear();

            if (changed || now - lastBroadcast >= RefreshInterval)
            {
                var states = new LaneStates
                {
                    Monitor = settings.ConsumerName,
                    At = now,
                    Lanes = lanes.Select(lane => new LaneStates.LaneState { Lane = lane, Ready = ready[(int)lane] }).ToList(),
                };
                await publisher.PublishAsync(BrokerNames.LaneStatesExchange, "", TaskJson.Serialize(states), stoppingToken);
                lastBroadcast = now;
            }
            await Task.WhenAny(_wake.WaitAsync(settings.Gate.CheckIntervalMs, stoppingToken), closed);
        }
    }

    /// <summary>Dead-letter depths, on a channel of their own: a queue not declared yet must not disturb the lane checks.</summary>
    static async Task CheckDeadLettersAsync(IConnection connection, DepthAlerts alerts, CancellationToken cancellationToken)
    {
        await using var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
        foreach (var lane in SessionLanes.All)
        {
            try
            {
                var declared = await channel.QueueDeclarePassiveAsync(BrokerNames.DeadLetterQueue(BrokerNames.LaneQueue(lane)), cancellationToken);
                alerts.DeadLetters(lane, declared.MessageCount);
            }
            catch (RabbitMQ.Client.Exceptions.OperationInterruptedException)
            {
                return; // no dead letters yet (the queue appears with the first one); the channel is closed now
            }
        }
    }

    /// <summary>
    /// A higher-lane start in the monitor's own process checks the broker at once, when it can matter: the lane has just
    /// filled its slots or the process's budget, and some lower lane is still open here.
    /// </summary>
    void OnTaskStarted(SessionLane lane)
    {
        if (!IsMonitor || lane == SessionLane.Generate
            || (activity.Active(lane) < options.Value.Queue.MaxConcurrency(lane) && slots.InUse < slots.Capacity))
            return;
        if (SessionLanes.All.Where(lower => lower > lane).All(lower => slots.WaitingIn(lower) == 0 && activity.Active(lower) == 0))
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
