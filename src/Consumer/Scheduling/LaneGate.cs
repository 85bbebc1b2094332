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
/// The lane gate of one consumer process (queue-per-lane topology): follows the ready counts the fleet monitor broadcasts
/// (<see cref="FleetMonitor"/>, one per fleet, reads the broker's depths) and hands them to the scheduler
/// (<see cref="LaneSlots"/>), which holds a free slot for a higher lane whose ready work this process could start now instead
/// of giving it to a lower lane. It never stops an endpoint: every lane keeps consuming, and which delivery starts is the
/// scheduler's decision. The broker's cost does not grow with the fleet (one poll, one small message per consumer per change).
/// </summary>
internal sealed class LaneGate(
    IOptions<LaneQueueOptions> options,
    LaneEndpoints endpoints,
    LaneActivity activity,
    LaneSlots slots,
    ILogger<LaneGate> logger) : BackgroundService
{
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
                        OnStates(delivery.Body);
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

    void OnStates(ReadOnlyMemory<byte> body)
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
            if ((int)state.Lane is var i && i >= 0 && i < LastReady.Length)
                Interlocked.Exchange(ref LastReady[i], state.Ready);
        }
        slots.SetReady([.. LastReady.Select((_, i) => Interlocked.Read(ref LastReady[i]))]);
    }
}
