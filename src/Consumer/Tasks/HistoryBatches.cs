using System.Buffers;
using System.Diagnostics;
using System.Threading.Channels;
using LaneQueue.Contracts;
using RabbitMQ.Client;

namespace LaneQueue.Consumer;

/// <summary>
/// The lifecycle events' copies in the task history stream (<see cref="BrokerNames.History"/>), appended as batches:
/// one message <c>{"events":[...]}</c> of type <see cref="BrokerNames.HistoryBatchType"/> (default exchange, routing key =
/// the stream) holds every event that came in since the last one. A stream write costs the broker about as much as a
/// task's own publish, and a task used to make three (<c>command.started</c>, its result, <c>command.completed</c>); now
/// it makes its result's and a share of a batch. At most one batch goes out per <see cref="Interval"/> while events keep
/// coming, and only once the previous one is confirmed; the first event after a quiet spell goes at once, and so does any
/// event but <c>command.started</c> (failures, retries, dead letters: rare, and read soon after by whoever watches).
/// Best effort like the events themselves: a batch the broker does not confirm (connection down, refused, no confirm in
/// 10 s) is dropped and counted in <see cref="Dropped"/>, as are events beyond <see cref="MaxPending"/> waiting.
/// </summary>
internal sealed class HistoryBatches : IAsyncDisposable
{
    /// <summary>Shortest time between two batches while events keep coming.</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(5);

    /// <summary>Events waiting for a batch at most; more are dropped (the broker is not keeping up or not reachable).</summary>
    public const int MaxPending = 100_000;

    /// <summary>A batch is cut at about this size (an event with its payload is at most <c>HistoryPayloadMaxBytes</c> + ~1 KiB).</summary>
    const int MaxBatchBytes = 1024 * 1024;

    static readonly TimeSpan ConfirmTimeout = TimeSpan.FromSeconds(10);

    readonly Func<CancellationToken, Task<IChannel>> _openChannel;
    readonly string _consumer;
    readonly Channel<byte[]> _queue = Channel.CreateBounded<byte[]>(new BoundedChannelOptions(MaxPending) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
    readonly Task _loop;
    TaskCompletionSource _wake = new(TaskCreationOptions.RunContinuationsAsynchronously);
    volatile bool _urgent;
    IChannel? _channel;
    long _dropped;
    long _batches;

    /// <param name="openChannel">Opens a channel with publisher confirms (tracking on) on the publisher's connection.</param>
    public HistoryBatches(Func<CancellationToken, Task<IChannel>> openChannel, string consumer)
    {
        _openChannel = openChannel;
        _consumer = consumer;
        _loop = Task.Run(RunAsync);
    }

    /// <summary>Events not stored: not confirmed by the broker, or more than <see cref="MaxPending"/> waiting.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>Batches the broker confirmed.</summary>
    public long Batches => Interlocked.Read(ref _batches);

    /// <summary>Queues one event (its JSON) for the next batch; <paramref name="urgent"/>: send that batch now.</summary>
    public void Add(byte[] eventJson, bool urgent)
    {
        if (!_queue.Writer.TryWrite(eventJson))
        {
            Interlocked.Increment(ref _dropped);
            return;
        }
        if (urgent)
            Wake();
    }

    void Wake()
    {
        _urgent = true;
        Volatile.Read(ref _wake).TrySetResult();
    }

    async Task RunAsync()
    {
        var reader = _queue.Reader;
        var lastSent = 0L;
        var batch = new List<byte[]>();
        while (await reader.WaitToReadAsync())
        {
            var wait = Interval - Stopwatch.GetElapsedTime(lastSent);
            if (lastSent != 0 && wait > TimeSpan.Zero && !_urgent)
                await Task.WhenAny(Task.Delay(wait), Volatile.Read(ref _wake).Task);
            _urgent = false;
            Interlocked.Exchange(ref _wake, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
            lastSent = Stopwatch.GetTimestamp();
            batch.Clear();
            var bytes = 0;
            while (bytes < MaxBatchBytes && reader.TryRead(out var item))
            {
                batch.Add(item);
                bytes += item.Length + 1;
            }
            if (batch.Count > 0)
                await PublishAsync(batch, bytes);
        }
    }

    async Task PublishAsync(List<byte[]> batch, int bytes)
    {
        var body = Body(batch, bytes);
        using var timeout = new CancellationTokenSource(ConfirmTimeout);
        try
        {
            if (_channel is not { IsOpen: true })
            {
                var old = Interlocked.Exchange(ref _channel, null);
                if (old is not null)
                    await DisposeQuietlyAsync(old);
                _channel = await _openChannel(timeout.Token);
            }
            await _channel.BasicPublishAsync("", BrokerNames.History, mandatory: false, BatchProperties(_consumer), body.WrittenMemory, timeout.Token);
            Interlocked.Increment(ref _batches);
        }
        catch (Exception)
        {
            // Best effort: the events still went to lanequeue.events; the history misses them (counted).
            Interlocked.Add(ref _dropped, batch.Count);
            if (timeout.IsCancellationRequested && Interlocked.Exchange(ref _channel, null) is { } stuck)
                _ = DisposeQuietlyAsync(stuck);
        }
    }

    /// <summary>A batch's body, <c>{"events":[...]}</c>, of the events' JSON; <paramref name="bytes"/>: their size, if known.</summary>
    public static ArrayBufferWriter<byte> Body(IReadOnlyList<byte[]> events, int bytes = 0)
    {
        ArgumentNullException.ThrowIfNull(events);
        var body = new ArrayBufferWriter<byte>((bytes > 0 ? bytes : events.Sum(e => e.Length + 1)) + 16);
        body.Write("{\"events\":["u8);
        for (var i = 0; i < events.Count; i++)
        {
            if (i > 0)
                body.Write(","u8);
            body.Write(events[i]);
        }
        body.Write("]}"u8);
        return body;
    }

    /// <summary>A batch's properties (default exchange, routing key <see cref="BrokerNames.History"/>).</summary>
    public static BasicProperties BatchProperties(string consumer) =>
        new() { ContentType = "application/json", Type = BrokerNames.HistoryBatchType, AppId = consumer };

    static async Task DisposeQuietlyAsync(IChannel channel)
    {
        try
        {
            await channel.DisposeAsync();
        }
        catch (Exception)
        {
            // already gone
        }
    }

    /// <summary>Sends what is waiting (up to 5 s), then closes the channel.</summary>
    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        Wake();
        try
        {
            await _loop.WaitAsync(TimeSpan.FromSeconds(5));
        }
        catch (TimeoutException)
        {
        }
        if (Interlocked.Exchange(ref _channel, null) is { } channel)
            await DisposeQuietlyAsync(channel);
    }
}
