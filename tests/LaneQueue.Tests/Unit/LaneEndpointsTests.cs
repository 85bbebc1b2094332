using System.Reflection;
using LaneQueue.Consumer;
using LaneQueue.Contracts;
using MassTransit;
using Microsoft.Extensions.Options;

namespace LaneQueue.Tests.Unit;

/// <summary>
/// An operator's pause stops the lane's MassTransit endpoint (basic.cancel). Stand-in endpoints (proxies that answer only
/// Stop) show which token that stop gets.
/// </summary>
public sealed class LaneEndpointsTests
{
    /// <summary>A receive endpoint whose Stop records its token and ends when the test says so; anything else is not used.</summary>
    public class StandInEndpoint : DispatchProxy
    {
        public readonly TaskCompletionSource<CancellationToken> StopCalled = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public readonly TaskCompletionSource StopDone = new(TaskCreationOptions.RunContinuationsAsynchronously);

        protected override object? Invoke(MethodInfo? targetMethod, object?[]? args)
        {
            if (targetMethod?.Name == nameof(IReceiveEndpoint.Stop))
            {
                var token = (CancellationToken)args![0]!;
                StopCalled.TrySetResult(token);
                return StopDone.Task.WaitAsync(token);
            }
            throw new NotSupportedException(targetMethod?.Name);
        }
    }

    /// <summary>MassTransit's "endpoint ready" notification for a stand-in endpoint.</summary>
    public class StandInReady : DispatchProxy
    {
        public Uri InputAddress { get; set; } = null!;
        public IReceiveEndpoint Endpoint { get; set; } = null!;

        protected override object? Invoke(MethodInfo? targetMethod, object?[]? args) => targetMethod?.Name switch
        {
            "get_InputAddress" => InputAddress,
            "get_ReceiveEndpoint" => Endpoint,
            "get_IsStarted" => true,
            _ => throw new NotSupportedException(targetMethod?.Name),
        };
    }

    static async Task<Dictionary<SessionLane, StandInEndpoint>> ReadyAsync(IReceiveEndpointObserver observer)
    {
        var endpoints = new Dictionary<SessionLane, StandInEndpoint>();
        foreach (var lane in SessionLanes.All)
        {
            var endpoint = DispatchProxy.Create<IReceiveEndpoint, StandInEndpoint>();
            endpoints[lane] = (StandInEndpoint)(object)endpoint;
            var ready = DispatchProxy.Create<ReceiveEndpointReady, StandInReady>();
            var standIn = (StandInReady)(object)ready;
            standIn.InputAddress = new Uri($"rabbitmq://localhost/test/{BrokerNames.LaneQueue(lane)}");
            standIn.Endpoint = endpoint;
            await observer.Ready(ready);
        }
        return endpoints;
    }

    [Fact]
    public async Task A_host_that_starts_stopping_while_a_pause_stops_the_endpoint_does_not_cancel_that_stop()
    {
        var lanes = new LaneEndpoints(Options.Create(new LaneQueueOptions()));
        var endpoints = await ReadyAsync(lanes);
        Assert.True(lanes.AllReady.IsCompleted);

        using var applicationStopping = new CancellationTokenSource();
        var pause = lanes.SetOperatorPauseAsync(SessionLane.Generate, paused: true, applicationStopping.Token);
        var stopToken = await endpoints[SessionLane.Generate].StopCalled.Task.WaitAsync(TimeSpan.FromSeconds(30));

        // The host starts stopping while MassTransit's basic.cancel is under way: cancelling it would leave the consumer on the
        // queue, its connection open, after the host stopped.
        await applicationStopping.CancelAsync();
        Assert.False(stopToken.IsCancellationRequested);

        endpoints[SessionLane.Generate].StopDone.SetResult();
        await pause.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(lanes.IsPaused(SessionLane.Generate));
        Assert.False(endpoints[SessionLane.Query].StopCalled.Task.IsCompleted);
    }

    [Fact]
    public async Task An_endpoint_stop_that_never_ends_is_given_up_after_the_switch_timeout_and_the_lane_counts_as_paused()
    {
        var lanes = new LaneEndpoints(Options.Create(new LaneQueueOptions { Gate = { SwitchTimeoutMs = 200 } }));
        var endpoints = await ReadyAsync(lanes);

        await lanes.SetOperatorPauseAsync(SessionLane.Generate, paused: true).WaitAsync(TimeSpan.FromSeconds(30));
        var stopToken = await endpoints[SessionLane.Generate].StopCalled.Task;
        Assert.True(stopToken.IsCancellationRequested);
        Assert.True(lanes.IsPaused(SessionLane.Generate));
    }
}
