using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace LaneQueue.Tests.Faults;

/// <summary>
/// A TCP proxy on 127.0.0.1 in front of a broker port, that a test can cut like a network: <see cref="Cut"/> keeps every
/// socket open but drops all bytes both ways (so only heartbeats can tell), and holds new connections without answering;
/// <see cref="Restore"/> resets the connections of the cut (as a healed network does to connections the peers gave up on)
/// and forwards again.
/// </summary>
public sealed class TcpProxy : IAsyncDisposable
{
    readonly TcpListener _listener;
    readonly int _target;
    readonly CancellationTokenSource _stop = new();
    readonly ConcurrentDictionary<int, (Socket Client, Socket Upstream)> _pairs = new();
    readonly Task _accepting;
    volatile bool _cut;
    int _nextId;

    public TcpProxy(int targetPort)
    {
        _target = targetPort;
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        _accepting = Task.Run(AcceptAsync);
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public bool IsCut => _cut;

    /// <summary>How long a new connection is held before it is forwarded: a slow broker (or network) to connect to.</summary>
    public TimeSpan ConnectDelay { get; init; }

    public void Cut() => _cut = true;

    public void Restore()
    {
        foreach (var (id, pair) in _pairs)
        {
            if (_pairs.TryRemove(id, out _))
                Reset(pair);
        }
        _cut = false;
    }

    static void Reset((Socket Client, Socket Upstream) pair)
    {
        foreach (var socket in new[] { pair.Client, pair.Upstream })
        {
            try
            {
                socket.LingerState = new LingerOption(true, 0); // close with RST
                socket.Close();
            }
            catch (ObjectDisposedException)
            {
            }
        }
    }

    async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptSocketAsync(_stop.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }
            _ = Task.Run(() => ServeAsync(client));
        }
    }

    async Task ServeAsync(Socket client)
    {
        // A connection made during a cut gets no answer until the cut ends (then it is reset with the others).
        var id = Interlocked.Increment(ref _nextId);
        var upstream = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            if (_cut)
            {
                _pairs[id] = (client, upstream);
                while (_cut && _pairs.ContainsKey(id) && !_stop.IsCancellationRequested)
                    await Task.Delay(100);
                if (!_pairs.ContainsKey(id))
                    return; // reset by Restore
            }
            if (ConnectDelay > TimeSpan.Zero)
                await Task.Delay(ConnectDelay, _stop.Token);
            await upstream.ConnectAsync(IPAddress.Loopback, _target, _stop.Token);
            _pairs[id] = (client, upstream);
            await Task.WhenAny(PumpAsync(client, upstream), PumpAsync(upstream, client));
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or OperationCanceledException)
        {
        }
        finally
        {
            if (_pairs.TryRemove(id, out var pair))
                Reset(pair);
            else
                Reset((client, upstream));
        }
    }

    async Task PumpAsync(Socket from, Socket to)
    {
        var buffer = new byte[16 * 1024];
        while (!_stop.IsCancellationRequested)
        {
            int read;
            try
            {
                read = await from.ReceiveAsync(buffer, SocketFlags.None, _stop.Token);
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException or OperationCanceledException)
            {
                return;
            }
            if (read == 0)
            {
                if (_cut)
                {
                    // the peer gave up during the cut: the other side must not hear of it until the cut ends
                    while (_cut && !_stop.IsCancellationRequested)
                        await Task.Delay(100);
                }
                return;
            }
            if (_cut)
                continue; // dropped on the floor, like a partitioned network
            try
            {
                await to.SendAsync(buffer.AsMemory(0, read), SocketFlags.None, _stop.Token);
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException or OperationCanceledException)
            {
                return;
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        Restore();
        try
        {
            await _accepting.WaitAsync(TimeSpan.FromSeconds(5));
        }
        catch (TimeoutException)
        {
        }
        _stop.Dispose();
    }
}
