using System.Collections.Concurrent;
using LaneQueue.Contracts;
using MassTransit;

namespace LaneQueue.Consumer;

/// <summary>
/// The receive endpoint of each lane, captured when MassTransit reports it ready, so the lane gate can pause
/// (stop: basic.cancel, unstarted deliveries go back to the queue) and resume (start: basic.consume) it.
/// </summary>
public sealed class LaneEndpoints : IReceiveEndpointObserver
{
    readonly ConcurrentDictionary<SessionLane, IReceiveEndpoint> _endpoints = new();
    readonly ConcurrentDictionary<SessionLane, bool> _paused = new();
    readonly ConcurrentDictionary<SessionLane, SemaphoreSlim> _switches = new();

    /// <summary>Longest a pause or resume waits for MassTransit before the lane switch moves on.</summary>
    public static TimeSpan SwitchTimeout { get; set; } = TimeSpan.FromSeconds(30);

    public bool IsPaused(SessionLane lane) => _paused.TryGetValue(lane, out var paused) && paused;

    public bool IsReady(SessionLane lane) => _endpoints.ContainsKey(lane);

    public async Task PauseAsync(SessionLane lane, CancellationToken cancellationToken = default)
    {
        var gate = _switches.GetOrAdd(lane, _ => new SemaphoreSlim(1, 1));
        await gate.WaitAsync(cancellationToken);
        try
        {
            if (IsPaused(lane) || !_endpoints.TryGetValue(lane, out var endpoint))
                return;
            _paused[lane] = true;
            // Bounded: a stop that waits on deliveries of a connection that just died must not hold this lane's switch forever.
            using var bounded = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            bounded.CancelAfter(SwitchTimeout);
            try
            {
                await endpoint.Stop(bounded.Token);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                // stopping goes on in MassTransit; the lane counts as paused
            }
        }
        finally
        {
            gate.Release();
        }
    }

    public async Task ResumeAsync(SessionLane lane, CancellationToken cancellationToken = default)
    {
        var gate = _switches.GetOrAdd(lane, _ => new SemaphoreSlim(1, 1));
        await gate.WaitAsync(cancellationToken);
        try
        {
            if (!IsPaused(lane) || !_endpoints.TryGetValue(lane, out var endpoint))
                return;
            var handle = endpoint.Start(cancellationToken);
            try
            {
                await handle.Ready.WaitAsync(SwitchTimeout, cancellationToken);
            }
            catch (TimeoutException)
            {
                // started, but not connected yet (broker restarting): MassTransit connects it when it can
            }
            _paused[lane] = false;
        }
        finally
        {
            gate.Release();
        }
    }

    Task IReceiveEndpointObserver.Ready(ReceiveEndpointReady ready)
    {
        var queue = ready.InputAddress.AbsolutePath.Split('/')[^1];
        foreach (var lane in SessionLanes.All)
        {
            if (queue == BrokerNames.LaneQueue(lane))
                _endpoints.TryAdd(lane, ready.ReceiveEndpoint);
        }
        return Task.CompletedTask;
    }

    Task IReceiveEndpointObserver.Stopping(ReceiveEndpointStopping stopping) => Task.CompletedTask;

    Task IReceiveEndpointObserver.Completed(ReceiveEndpointCompleted completed) => Task.CompletedTask;

    Task IReceiveEndpointObserver.Faulted(ReceiveEndpointFaulted faulted) => Task.CompletedTask;
}
