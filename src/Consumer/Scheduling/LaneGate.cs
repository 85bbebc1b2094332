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
/// The lane gate of one consumer process (queue-per-lane topology): follows the lane states the fleet monitor broadcasts
/// (<see cref="FleetMonitor"/>, one per fleet, reads the broker's depths and decides with <see cref="GatePolicy"/>) and
/// pauses (basic.cancel) or resumes (basic.consume) this process's lane endpoints to match. A lane is marked held the
/// moment the broadcast arrives, before its endpoint stops, so a delivery already prefetched is returned to its lane
/// instead of starting (<see cref="LaneTaskConsumer"/>). Every process follows the same broadcast, so the whole fleet pauses
/// together; the broker's cost does not grow with the fleet (one poll, one small message per consumer per change).
/// </summary>
internal sealed class LaneGate(
    IOptions<LaneQueueOptions> options,
    LaneEndpoints endpoints,
    LaneActivity activity,
    ConsumerMetrics metrics,
    ILogger<LaneGate> logger) : BackgroundService
{
    readonly Dictionary<SessionLane, Task> _switching = [];
    readonly string?[] _held = new string?[SessionLanes.All.Count];
    long _broadcasts;

    /// <summary>The latest ready counts the monitor read from the broker, by lane priority.</summary>
    public long[] LastReady => activity.Ready;

    /// <summary>Lane state broadcasts received.</summary>
    public long Broadcasts => Interlocked.Read(ref _broadcasts);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var settings = options.Value;
        if (settings.Topology != LaneTopology.QueuePerLane || !settings.Gate.Enabled)
            return;
        // Wait for the lane endpoints, not for a healthy bus: a lane paused by an operator leaves the bus "degraded".
        await endpoints.AllReady.WaitAsync(stoppingToken);
        IConnection? connection = null;
        try
        {
            while (connection is null)
            {
                try
                {
                    // Recovers by itself, with its server-named queue, binding and consumer.
                    connection = await BrokerConnection.ConnectAsync(settings.RabbitMqUrl, $"{settings.ConsumerName}-gate", stoppingToken);
                    var channel = await connection.CreateChannelAsync(cancellationToken: stoppingToken);
                    await channel.ExchangeDeclareAsync(BrokerNames.LaneStatesExchange, ExchangeType.Fanout, durable: true, autoDelete: false, cancellationToken: stoppingToken);
                    var queue = (await channel.QueueDeclareAsync("", durable: false, exclusive: true, autoDelete: true, cancellationToken: stoppingToken)).QueueName;
                    await channel.QueueBindAsync(queue, BrokerNames.LaneStatesExchange, "", cancellationToken: stoppingToken);
                    var follower = new AsyncEventingBasicConsumer(channel);
                    follower.ReceivedAsync += (_, delivery) =>
                    {
                        OnStates(delivery.Body, stoppingToken);
                        return Task.CompletedTask;
                    };
                    await channel.BasicConsumeAsync(queue, autoAck: true, follower, stoppingToken);
                }
                catch (Exception ex) when (!stoppingToken.IsCancellationRequested && BrokerConnection.IsConnectionFailure(ex))
                {
                    Log.GateCheckFailed(logger, ex.Message);
                    if (connection is not null)
                        await connection.DisposeAsync();
                    connection = null;
                    await Task.Delay(TimeSpan.FromSeconds(1), stoppingToken);
                }
            }
            await Task.Delay(Timeout.Infinite, stoppingToken);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        finally
        {
            if (connection is not null)
                await connection.DisposeAsync();
        }
    }

    void OnStates(ReadOnlyMemory<byte> body, CancellationToken cancellationToken)
    {
        LaneStates states;
        try
        {
            states = TaskJson.Deserialize<LaneStates>(body.Span);
        }
        catch (JsonException ex)
        {
            Log.LaneStatesIgnored(logger, ex.Message);
            return;
        }
        Interlocked.Increment(ref _broadcasts);
        foreach (var state in states.Lanes)
        {
            var i = (int)state.Lane;
            if (i < 0 || i >= _held.Length)
                continue;
            Interlocked.Exchange(ref LastReady[i], state.Ready);
            // At once: a delivery of this lane that arrives from now on is returned, not started.
            endpoints.HoldForGate(state.Lane, state.Held is not null && state.ReturnHeld);
            if (_held[i] is null == state.Held is null)
                continue;
            _held[i] = state.Held;
            Switch(new GateChange(state.Lane, state.Held is not null, state.Held ?? "higher lanes drained"), cancellationToken);
        }
    }

    void Switch(GateChange change, CancellationToken cancellationToken)
    {
        // Stopping an endpoint waits for its running tasks, so each lane switches on its own task,
        // one switch at a time per lane, never holding up the broadcasts.
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
}
