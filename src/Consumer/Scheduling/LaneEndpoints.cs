using System.Collections.Concurrent;
using LaneQueue.Contracts;
using MassTransit;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace LaneQueue.Consumer;

/// <summary>
/// The receive endpoint of each lane, captured when MassTransit reports it ready, and whether an operator wants it paused
/// (fleet command <c>pause</c>). While paused, the endpoint is stopped (basic.cancel); the deliveries it held that had not
/// started are put back in their lane by the consumer (<see cref="LaneSlots.SetPaused"/>), so a pause never counts as a
/// delivery on a quorum queue. The lane gate never stops an endpoint: it only decides which waiting task gets a slot.
/// As a hosted service it is registered after MassTransit, so it stops first: no switch starts once the bus is stopping,
/// and the switches under way finish before it (MassTransit's bus stop could hang on an endpoint just paused and resumed;
/// <see cref="BoundedBusStop"/> bounds what is left of that).
/// </summary>
internal sealed class LaneEndpoints(IOptions<LaneQueueOptions> options) : IReceiveEndpointObserver, IHostedService
{
    sealed class LaneState
    {
        public readonly SemaphoreSlim Switch = new(1, 1);
        /// <summary>The lane's endpoints: its own queue's, then its session shards' (<see cref="LaneQueueOptions.SessionShards"/>).</summary>
        public readonly List<IReceiveEndpoint> Endpoints = [];
        public bool Stopped;
        public volatile bool ByOperator;
    }

    readonly ConcurrentDictionary<SessionLane, LaneState> _lanes = new();
    readonly CancellationTokenSource _stop = new();
    readonly TaskCompletionSource _allReady = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Longest a pause or resume waits for MassTransit before the lane switch moves on.</summary>
    TimeSpan SwitchTimeout => TimeSpan.FromMilliseconds(options.Value.Gate.SwitchTimeoutMs);

    LaneState State(SessionLane lane) => _lanes.GetOrAdd(lane, _ => new LaneState());

    /// <summary>Whether an operator paused the lane (fleet command <c>pause</c>, replayed by consumers that start later).</summary>
    public bool IsPaused(SessionLane lane) => State(lane).ByOperator;

    /// <summary>Why the lane is paused, or null when it runs.</summary>
    public string? PauseReason(SessionLane lane) => IsPaused(lane) ? "paused by operator" : null;

    public bool IsReady(SessionLane lane)
    {
        var state = State(lane);
        lock (state.Endpoints)
            return state.Endpoints.Count == 1 + options.Value.ShardsOf(lane);
    }

    /// <summary>Completes once every lane has its receive endpoint (queue-per-lane topology).</summary>
    public Task AllReady => _allReady.Task;

    /// <summary>An operator's pause or resume (fleet commands, replayed by consumers that start later).</summary>
    public Task SetOperatorPauseAsync(SessionLane lane, bool paused, CancellationToken cancellationToken = default) =>
        ApplyAsync(lane, s => s.ByOperator = paused, cancellationToken);

    async Task ApplyAsync(SessionLane lane, Action<LaneState> change, CancellationToken cancellationToken)
    {
        var state = State(lane);
        await state.Switch.WaitAsync(cancellationToken);
        try
        {
            change(state);
            if (_stop.IsCancellationRequested)
                return; // stopping: the bus stops every endpoint itself
            var wantStopped = state.ByOperator;
            if (!IsReady(lane) || wantStopped == state.Stopped)
                return;
            IReceiveEndpoint[] endpoints;
            lock (state.Endpoints)
                endpoints = [.. state.Endpoints];
            if (wantStopped)
            {
                state.Stopped = true;
                // Bounded: a stop that waits on deliveries of a connection that just died must not hold this lane's switch forever.
                // Not by the caller's token: a host that starts stopping while this basic.cancel is under way would cancel it, and
                // MassTransit then keeps the consumer on the lane's queue, its connection open after the host stopped (deliveries
                // would go to a consumer nobody runs). StopAsync waits for this switch instead.
                using var bounded = new CancellationTokenSource(SwitchTimeout);
                try
                {
                    await Task.WhenAll(endpoints.Select(endpoint => endpoint.Stop(bounded.Token)));
                }
                catch (OperationCanceledException)
                {
                    // stopping goes on in MassTransit; the lane counts as paused
                }
            }
            else
            {
                // Bounded: an endpoint started while the bus stops never becomes ready.
                await Task.WhenAll(endpoints.Select(endpoint => endpoint.Start(cancellationToken).Ready)).WaitAsync(SwitchTimeout, cancellationToken);
                state.Stopped = false;
            }
        }
        finally
        {
            state.Switch.Release();
        }
    }

    Task IReceiveEndpointObserver.Ready(ReceiveEndpointReady ready)
    {
        var queue = BrokerHost.QueueOf(ready.InputAddress);
        if (BrokerNames.LaneOfQueue(queue) is { } lane)
        {
            var state = State(lane);
            // A pause that arrived before the endpoint existed (replayed at start) is applied by ReconcileWhenReadyAsync,
            // which runs in the background once every lane is ready: stopping an endpoint from inside its own "ready"
            // notification races MassTransit's start-up.
            lock (state.Endpoints)
            {
                if (!state.Endpoints.Contains(ready.ReceiveEndpoint))
                    state.Endpoints.Add(ready.ReceiveEndpoint);
            }
        }
        if (SessionLanes.All.All(IsReady))
            _allReady.TrySetResult(); // continuations run elsewhere, never inside MassTransit's notification
        return Task.CompletedTask;
    }

    /// <summary>
    /// Once every lane's endpoint is ready, brings each in line with what is wanted: a pause replayed from the fleet log before
    /// the endpoint existed. In the background, so the host's start never waits on it.
    /// </summary>
    async Task ReconcileWhenReadyAsync(CancellationToken cancellationToken)
    {
        try
        {
            await AllReady.WaitAsync(cancellationToken);
            foreach (var lane in SessionLanes.All)
                await ApplyAsync(lane, _ => { }, cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
    }

    Task IHostedService.StartAsync(CancellationToken cancellationToken)
    {
        if (options.Value.Topology == LaneTopology.QueuePerLane)
            _ = ReconcileWhenReadyAsync(_stop.Token);
        return Task.CompletedTask;
    }

    async Task IHostedService.StopAsync(CancellationToken cancellationToken)
    {
        await _stop.CancelAsync();
        foreach (var state in _lanes.Values)
        {
            try
            {
                if (await state.Switch.WaitAsync(SwitchTimeout, cancellationToken))
                    state.Switch.Release();
            }
            catch (OperationCanceledException)
            {
                return; // the host's shutdown time is up: let MassTransit stop what it can
            }
        }
    }

    Task IReceiveEndpointObserver.Stopping(ReceiveEndpointStopping stopping) => Task.CompletedTask;

    Task IReceiveEndpointObserver.Completed(ReceiveEndpointCompleted completed) => Task.CompletedTask;

    Task IReceiveEndpointObserver.Faulted(ReceiveEndpointFaulted faulted) => Task.CompletedTask;
}
