using System.Diagnostics;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;

namespace LaneQueue.Producer;

/// <summary>
/// The confirmed channel of one connection (publisher confirms with tracking), shared by every publish through it, and
/// the one "wait for recovery and publish again" loop of LaneQueue. A publish returns once the broker has confirmed it.
/// <list type="bullet">
/// <item>The broker cannot be reached (connection lost, recovering): the operation runs again every 250 ms on the channel
/// the connection's automatic recovery brings back, until <see cref="RecoveryTimeout"/> has passed since the first try;
/// then a <see cref="TimeoutException"/> (inner: the last failure). A message whose confirm was lost with the connection
/// may so be stored twice.</item>
/// <item>The broker refused an operation (403, 404, 405, 406 close just the channel): the refusal is thrown as is and the next
/// operation runs on a new channel.</item>
/// <item>A <c>mandatory</c> message no queue takes (basic.return) or a nack: <see cref="PublishException"/>
/// (<see cref="PublishException.IsReturn"/> tells which), never retried.</item>
/// <item>No confirm within <see cref="ConfirmTimeout"/> (RabbitMQ.Client 7.2 can wait for ever for the confirm of a publish
/// in flight when its connection recovers, rabbitmq-dotnet-client#1930; or the broker blocks publishers): the channel is
/// dropped and the publish runs again on a new one, within the same <see cref="RecoveryTimeout"/>.</item>
/// </list>
/// Does not own the connection. Safe for concurrent use.
/// </summary>
internal sealed class ConfirmedPublisher(IConnection connection, TimeSpan recoveryTimeout) : IAsyncDisposable
{
    static readonly TimeSpan RetryInterval = TimeSpan.FromMilliseconds(250);

    readonly SemaphoreSlim _lock = new(1, 1);
    IChannel? _channel;
    bool _disposed;

    /// <summary>How long an operation waits for the broker to come back before it fails.</summary>
    public TimeSpan RecoveryTimeout { get; } = recoveryTimeout;

    /// <summary>Publishes with <c>mandatory</c> set and waits for the broker's confirm.</summary>
    /// <exception cref="PublishException">Returned (no queue bound) or nacked.</exception>
    /// <exception cref="TimeoutException">The broker stayed unreachable for <see cref="RecoveryTimeout"/>.</exception>
    /// <summary>How long one publish waits for its confirm before it is tried again on a new channel (at most 10 s).</summary>
    public TimeSpan ConfirmTimeout => RecoveryTimeout < TimeSpan.FromSeconds(10) ? RecoveryTimeout : TimeSpan.FromSeconds(10);

    public Task PublishAsync(string exchange, string routingKey, BasicProperties properties, ReadOnlyMemory<byte> body, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(properties);
        return RunAsync(async channel =>
        {
            using var attempt = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            attempt.CancelAfter(ConfirmTimeout);
            try
            {
                await channel.BasicPublishAsync(exchange, routingKey, mandatory: true, properties, body, attempt.Token);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                await AbandonAsync(channel);
                throw new TimeoutException($"the broker did not confirm the publish within {ConfirmTimeout.TotalSeconds:0.#} s");
            }
        }, cancellationToken);
    }

    /// <summary>Drops <paramref name="channel"/> (open but stuck) so that the next operation gets a new one.</summary>
    async Task AbandonAsync(IChannel channel)
    {
        await _lock.WaitAsync();
        try
        {
            if (!ReferenceEquals(_channel, channel))
                return;
            _channel = null;
        }
        finally
        {
            _lock.Release();
        }
        _ = Task.Run(async () =>
        {
            try
            {
                await channel.DisposeAsync(); // may itself wait on the broker: not on the publisher's path
            }
            catch (Exception)
            {
                // a stuck channel may fail to close cleanly; it is gone from this publisher either way
            }
        });
    }

    /// <summary>
    /// Runs <paramref name="operation"/> (publishes, declares) on the confirmed channel with the recovery rules above. It
    /// may run more than once, and on a different channel each time after a refusal or a recovery: whatever it keeps per
    /// channel (e.g. "this queue is declared") must be keyed by the channel it is given.
    /// </summary>
    /// <exception cref="TimeoutException">The broker stayed unreachable for <see cref="RecoveryTimeout"/>.</exception>
    public async Task RunAsync(Func<IChannel, Task> operation, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(operation);
        var clock = Stopwatch.StartNew();
        // Getting a channel waits on the broker too (channel.open on a blocked or recovering connection): within the same budget.
        using var budget = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        budget.CancelAfter(RecoveryTimeout);
        while (true)
        {
            try
            {
                await operation(await ChannelAsync(budget.Token));
                return;
            }
            catch (OperationCanceledException ex) when (budget.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                throw new TimeoutException($"the broker has not been reachable for {RecoveryTimeout.TotalSeconds:0.#} s (no channel could be opened)", ex);
            }
            catch (Exception ex) when (BrokerConnection.IsConnectionFailure(ex) && !cancellationToken.IsCancellationRequested)
            {
                if (clock.Elapsed >= RecoveryTimeout)
                    throw new TimeoutException($"the broker has not been reachable for {RecoveryTimeout.TotalSeconds:0.#} s ({ex.Message})", ex);
                await Task.Delay(RetryInterval, cancellationToken);
            }
        }
    }

    /// <summary>
    /// The channel: created on first use, and again when the broker closed just the channel (a refusal). A channel closed
    /// with its connection is kept: the connection's recovery reopens it (using it meanwhile fails as a connection failure).
    /// </summary>
    async Task<IChannel> ChannelAsync(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_channel is { IsOpen: true } open)
            return open;
        await _lock.WaitAsync(cancellationToken);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_channel is null || (!_channel.IsOpen && connection.IsOpen && _channel.CloseReason is { ReplyCode: 403 or 404 or 405 or 406 }))
            {
                var old = _channel;
                _channel = await connection.CreateChannelAsync(
                    new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true), cancellationToken);
                if (old is not null)
                    await old.DisposeAsync();
            }
            return _channel;
        }
        finally
        {
            _lock.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_disposed)
            return;
        await _lock.WaitAsync();
        try
        {
            _disposed = true;
            if (_channel is not null)
                await _channel.DisposeAsync();
        }
        finally
        {
            _lock.Release();
        }
        _lock.Dispose();
    }
}
