using LaneQueue.Contracts;
using LaneQueue.Producer;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace LaneQueue.Consumer;

/// <summary>
/// The fleet-wide limits of a lane at admission (<c>LaneQueue:FleetLimits</c>; queues and their rules in
/// <see cref="FleetLimitQueues"/>). A task of a limited lane takes a running token (held unacked until the task has ended)
/// and spends a start token before it waits for a slot. To wait, it registers a consumer of its own with prefetch 1 on the
/// token queue and cancels it at the first delivery: the broker hands tokens to waiters in turn across the fleet, and a
/// waiter that gives up (the task is cancelled, the consumer drains) gives back a token that raced its cancel.
/// <para>
/// One connection of its own, without automatic recovery: when it closes, the broker takes back every token it held (a dead
/// process's tokens come back the same way), so tokens held from before are dropped, never rejected on a new channel. The
/// tasks still running then run on without a token: after a lost connection the cap can be exceeded for the length of
/// one run. No connection is made while no lane has a fleet limit.
/// </para>
/// </summary>
internal sealed class FleetLimits(IOptions<LaneQueueOptions> options, ILogger<FleetLimits> logger) : IAsyncDisposable
{
    static readonly TimeSpan ReconnectDelay = TimeSpan.FromSeconds(1);

    readonly SemaphoreSlim _connect = new(1, 1);
    IConnection? _connection;
    IChannel? _channel;
    bool _disposed;

    /// <summary>A token this process holds on <see cref="Channel"/>.</summary>
    sealed record Token(IChannel Channel, ulong DeliveryTag);

    /// <summary>The lease of a task that took no token (nothing to give back).</summary>
    public static IAsyncDisposable NoTokens => Lease.None;

    /// <summary>Whether the lane has a fleet-wide limit (its tasks take tokens before they start).</summary>
    public bool Limits(SessionLane lane) => options.Value.FleetLimits.TryGetValue(lane, out var limit) && !limit.IsEmpty;

    /// <summary>
    /// Waits for the lane's fleet limits; dispose the lease when the task has ended (it gives the running token back).
    /// Completes at once, with nothing to give back, for a lane without fleet limits.
    /// </summary>
    public async Task<IAsyncDisposable> AdmitAsync(SessionLane lane, CancellationToken cancellationToken)
    {
        if (!Limits(lane))
            return Lease.None;
        var limit = options.Value.FleetLimits[lane];
        Token? running = null;
        if (limit.MaxConcurrency is not null)
            running = await TakeAsync(FleetLimitQueues.Running(lane), cancellationToken);
        try
        {
            if (limit.RateLimit.Period is not null)
                await SpendStartAsync(lane, cancellationToken);
        }
        catch
        {
            await ReturnAsync(running);
            throw;
        }
        return new Lease(this, running);
    }

    /// <summary>Takes a start token and rejects it without requeue: the broker parks it in the cooling queue for one period.</summary>
    async Task SpendStartAsync(SessionLane lane, CancellationToken cancellationToken)
    {
        while (true)
        {
            var token = await TakeAsync(FleetLimitQueues.Starts(lane), cancellationToken);
            try
            {
                await token.Channel.BasicRejectAsync(token.DeliveryTag, requeue: false, CancellationToken.None);
                return;
            }
            catch (Exception ex) when (BrokerConnection.IsConnectionFailure(ex))
            {
                // the channel closed with the token: the broker has it back unspent; take another
                await Task.Delay(ReconnectDelay, cancellationToken);
            }
        }
    }

    async Task<Token> TakeAsync(string queue, CancellationToken cancellationToken)
    {
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            IChannel channel;
            try
            {
                channel = await ChannelAsync(cancellationToken);
            }
            catch (Exception ex) when (BrokerConnection.IsConnectionFailure(ex) && !cancellationToken.IsCancellationRequested)
            {
                Log.FleetLimitsUnreachable(logger, ex.Message);
                await Task.Delay(ReconnectDelay, cancellationToken);
                continue;
            }
            if (await TryTakeAsync(channel, queue, cancellationToken) is { } token)
                return token;
            await Task.Delay(ReconnectDelay, cancellationToken); // the channel closed while waiting: wait on a new one
        }
    }

    /// <summary>One wait for a token on <paramref name="channel"/>; null when the channel closed meanwhile.</summary>
    async Task<Token?> TryTakeAsync(IChannel channel, string queue, CancellationToken cancellationToken)
    {
        var delivered = new TaskCompletionSource<ulong?>(TaskCreationOptions.RunContinuationsAsynchronously);
        var consumer = new AsyncEventingBasicConsumer(channel);
        consumer.ReceivedAsync += async (_, delivery) =>
        {
            if (delivered.TrySetResult(delivery.DeliveryTag))
                return;
            try
            {
                await channel.BasicRejectAsync(delivery.DeliveryTag, requeue: true); // the waiter gave up meanwhile
            }
            catch (Exception ex) when (BrokerConnection.IsConnectionFailure(ex))
            {
                // closed meanwhile: the broker has it back
            }
        };
        consumer.ShutdownAsync += (_, _) =>
        {
            delivered.TrySetResult(null);
            return Task.CompletedTask;
        };
        consumer.UnregisteredAsync += (_, _) =>
        {
            delivered.TrySetResult(null); // cancelled by the broker (the token queue was deleted)
            return Task.CompletedTask;
        };
        string consumerTag;
        try
        {
            // Not cancellable: a consume the broker registers after a cancelled call would take a token nobody waits for.
            consumerTag = await channel.BasicConsumeAsync(queue, autoAck: false, consumer, CancellationToken.None);
        }
        catch (RabbitMQ.Client.Exceptions.OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == 404)
        {
            // The token queue was deleted (an operator resetting the limit): tasks of the lane wait until a consumer starting
            // with the limit creates it again.
            Log.FleetLimitsUnreachable(logger, $"token queue {queue} not found; restart a consumer with the fleet limit to create it");
            return null;
        }
        catch (Exception ex) when (BrokerConnection.IsConnectionFailure(ex))
        {
            cancellationToken.ThrowIfCancellationRequested();
            return null;
        }
        ulong? tag;
        try
        {
            using (cancellationToken.Register(() => delivered.TrySetCanceled(cancellationToken)))
                tag = await delivered.Task;
        }
        finally
        {
            if (channel.IsOpen)
            {
                try
                {
                    await channel.BasicCancelAsync(consumerTag, noWait: false, CancellationToken.None);
                }
                catch (Exception ex) when (BrokerConnection.IsConnectionFailure(ex))
                {
                    // closed meanwhile: the broker took back whatever this consumer had
                }
            }
        }
        return tag is { } deliveryTag ? new Token(channel, deliveryTag) : null;
    }

    async Task ReturnAsync(Token? token)
    {
        if (token is null || !token.Channel.IsOpen)
            return; // a closed channel's tokens are back at the broker already
        try
        {
            await token.Channel.BasicRejectAsync(token.DeliveryTag, requeue: true, CancellationToken.None);
        }
        catch (Exception ex) when (BrokerConnection.IsConnectionFailure(ex))
        {
            // closed meanwhile: the broker has it back
        }
    }

    async Task<IChannel> ChannelAsync(CancellationToken cancellationToken)
    {
        if (_channel is { IsOpen: true } open)
            return open;
        await _connect.WaitAsync(cancellationToken);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_channel is { IsOpen: true } again)
                return again;
            if (_connection is not { IsOpen: true })
            {
                if (_connection is not null)
                    await _connection.DisposeAsync();
                var settings = options.Value;
                var name = $"{settings.ConsumerName}-limits";
                var factory = BrokerConnection.Factory(settings.RabbitMqUrl, name);
                factory.AutomaticRecoveryEnabled = false; // tokens of a closed connection are the broker's again: never reuse their tags
                factory.TopologyRecoveryEnabled = false;
                _connection = await factory.CreateConnectionAsync(BrokerConnection.Endpoints(settings.RabbitMqUrl), name, cancellationToken);
            }
            var channel = await _connection.CreateChannelAsync(cancellationToken: cancellationToken);
            await channel.BasicQosAsync(0, 1, global: false, cancellationToken); // each waiter's consumer: one token
            _channel = channel;
            return channel;
        }
        finally
        {
            _connect.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _connect.WaitAsync();
        try
        {
            _disposed = true;
            if (_channel is not null)
                await _channel.DisposeAsync();
            if (_connection is not null)
                await _connection.DisposeAsync();
        }
        finally
        {
            _connect.Release();
        }
    }

    sealed class Lease(FleetLimits? limits, Token? running) : IAsyncDisposable
    {
        public static readonly Lease None = new(null, null);
        int _released;

        public async ValueTask DisposeAsync()
        {
            if (limits is not null && Interlocked.Exchange(ref _released, 1) == 0)
                await limits.ReturnAsync(running);
        }
    }
}
