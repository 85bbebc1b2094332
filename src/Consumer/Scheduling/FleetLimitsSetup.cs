using LaneQueue.Contracts;
using LaneQueue.Producer;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;

namespace LaneQueue.Consumer;

/// <summary>
/// At start, before the bus: makes sure the token queues of every configured fleet limit exist with exactly their tokens
/// (<see cref="FleetLimitQueues"/>). A queue that exists is declared again with this consumer's arguments: the broker refuses
/// other values (406), and the start fails naming the setting. A queue that does not exist is created and filled by one
/// consumer at a time: it holds an exclusive lock queue while it looks again, declares and publishes the tokens (confirmed),
/// so consumers starting together never fill a queue twice. A lane this consumer does not limit, whose token queue exists
/// (the rest of the fleet limits it), is logged as a warning: this consumer's tasks of that lane do not count.
/// </summary>
internal sealed class FleetLimitsSetup(IOptions<LaneQueueOptions> options, ILogger<FleetLimitsSetup> logger) : IHostedService
{
    static readonly TimeSpan LockRetry = TimeSpan.FromMilliseconds(100);
    const int LockAttempts = 300;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var settings = options.Value;
        await using var connection = await BrokerConnection.ConnectAsync(settings.RabbitMqUrl, $"{settings.ConsumerName}-limits-setup", cancellationToken);
        foreach (var lane in SessionLanes.All)
        {
            var limit = settings.FleetLimits.GetValueOrDefault(lane) ?? new FleetLaneLimit();
            if (limit.MaxConcurrency is { } cap)
            {
                await EnsureAsync(connection, FleetLimitQueues.Running(lane), cap, $"LaneQueue:FleetLimits:{lane}:MaxConcurrency = {cap}",
                    [(FleetLimitQueues.Running(lane), FleetLimitQueues.RunningArguments(cap, settings.QuorumQueues))], cancellationToken);
            }
            else if (await ExistsAsync(connection, FleetLimitQueues.Running(lane), cancellationToken))
            {
                Log.FleetLimitNotSet(logger, lane.WireName(), "MaxConcurrency", FleetLimitQueues.Running(lane));
            }

            if (limit.RateLimit is { Period: { } period } rate)
            {
                await EnsureAsync(connection, FleetLimitQueues.Starts(lane), rate.MaxOperations,
                    $"LaneQueue:FleetLimits:{lane}:RateLimit = {rate.MaxOperations} {rate.LimitType}",
                    [
                        (FleetLimitQueues.Cooling(lane), FleetLimitQueues.CoolingArguments(lane, period, settings.QuorumQueues)),
                        (FleetLimitQueues.Starts(lane), FleetLimitQueues.StartsArguments(lane, rate.MaxOperations, settings.QuorumQueues)),
                    ], cancellationToken);
            }
            else if (await ExistsAsync(connection, FleetLimitQueues.Starts(lane), cancellationToken))
            {
                Log.FleetLimitNotSet(logger, lane.WireName(), "RateLimit", FleetLimitQueues.Starts(lane));
            }
        }
    }

    /// <summary>
    /// Declares <paramref name="queues"/> (the token queue last) and, when the token queue is new, puts
    /// <paramref name="tokens"/> tokens in it.
    /// </summary>
    async Task EnsureAsync(IConnection connection, string tokenQueue, int tokens, string setting,
        IReadOnlyList<(string Name, Dictionary<string, object?> Arguments)> queues, CancellationToken cancellationToken)
    {
        for (var attempt = 0; attempt < LockAttempts; attempt++)
        {
            if (await ExistsAsync(connection, tokenQueue, cancellationToken))
            {
                await DeclareAsync(connection, queues, setting, cancellationToken);
                return;
            }
            await using var locked = await connection.CreateChannelAsync(
                new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true), cancellationToken);
            try
            {
                await locked.QueueDeclareAsync(FleetLimitQueues.SetupLock(tokenQueue), durable: false, exclusive: true, autoDelete: true, cancellationToken: cancellationToken);
            }
            catch (OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == 405)
            {
                await Task.Delay(LockRetry, cancellationToken); // another consumer is creating it
                continue;
            }
            try
            {
                var created = !await ExistsAsync(connection, tokenQueue, cancellationToken);
                await DeclareAsync(connection, queues, setting, cancellationToken);
                if (created)
                {
                    var body = "{\"token\":true}"u8.ToArray();
                    var properties = new BasicProperties { Persistent = true, ContentType = "application/json" };
                    for (var i = 0; i < tokens; i++)
                        await locked.BasicPublishAsync("", tokenQueue, mandatory: true, properties, body, cancellationToken);
                    Log.FleetLimitCreated(logger, tokenQueue, tokens, setting);
                }
            }
            finally
            {
                if (locked.IsOpen) // else the lock goes with the connection
                    await locked.QueueDeleteAsync(FleetLimitQueues.SetupLock(tokenQueue), cancellationToken: cancellationToken);
            }
            return;
        }
        throw new InvalidOperationException($"cannot set up the fleet limit {setting}: another consumer held {FleetLimitQueues.SetupLock(tokenQueue)} for {LockAttempts * LockRetry.TotalSeconds:0} s");
    }

    static async Task DeclareAsync(IConnection connection, IReadOnlyList<(string Name, Dictionary<string, object?> Arguments)> queues, string setting,
        CancellationToken cancellationToken)
    {
        foreach (var (name, arguments) in queues)
        {
            await using var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
            try
            {
                await channel.QueueDeclareAsync(name, durable: true, exclusive: false, autoDelete: false, arguments, cancellationToken: cancellationToken);
            }
            catch (OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == 406)
            {
                throw new InvalidOperationException(
                    $"fleet limit mismatch: this consumer has {setting}, but the broker's token queue '{name}' was set up by another consumer " +
                    $"with a different value ({ex.ShutdownReason.ReplyText}). Every consumer of the fleet must use the same fleet limits; to change " +
                    $"one, stop every consumer, delete the lane's lanequeue.limits.* queues (rabbitmqctl delete_queue) and start them with the new value.", ex);
            }
        }
    }

    static async Task<bool> ExistsAsync(IConnection connection, string queue, CancellationToken cancellationToken)
    {
        await using var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
        try
        {
            await channel.QueueDeclarePassiveAsync(queue, cancellationToken);
            return true;
        }
        catch (OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode is 404 or 403)
        {
            return false; // not there, or a user without rights on lanequeue.limits.* (then it limits nothing for this consumer)
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
