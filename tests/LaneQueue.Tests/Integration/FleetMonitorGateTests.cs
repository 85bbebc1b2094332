using System.Collections.Concurrent;
using System.Text.Json;
using LaneQueue.Consumer;
using LaneQueue.Contracts;
using LaneQueue.Tests.Broker;
using Microsoft.Extensions.DependencyInjection;
using RabbitMQ.Client;

namespace LaneQueue.Tests.Integration;

/// <summary>
/// The lane gate with one monitor per fleet: exactly one consumer reads the depths and raises the lane events; an operator's
/// pause stops its lane only, and hands the deliveries of that lane a consumer holds back to the lane, not started.
/// </summary>
[Collection(BrokerCollection.Name)]
public sealed class FleetMonitorGateTests(BrokerFixture broker) : IAsyncLifetime
{
    TestFleet _fleet = null!;

    public async Task InitializeAsync() => _fleet = new TestFleet(await broker.CreateVhostAsync());

    public Task DisposeAsync() => _fleet.DisposeAsync().AsTask();

    [Fact]
    public async Task One_consumer_of_the_fleet_is_the_monitor_and_raises_each_lane_event_once()
    {
        foreach (var name in new[] { "first", "second", "third" })
            await _fleet.StartConsumerAsync(name, o => o.Queue = o.Queue with { PressureThreshold = 5 });
        await TestVhost.EventuallyAsync(() => Task.FromResult(_fleet.Hosts.Count(IsMonitor) == 1), "one monitor");
        await TestVhost.EventuallyAsync(() => Task.FromResult(_fleet.Hosts.All(h => h.Gate().Broadcasts > 0)), "every consumer follows its broadcasts");

        var factory = new ConnectionFactory { Uri = new Uri(_fleet.Vhost.Url) };
        await using var connection = await factory.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        var queue = (await channel.QueueDeclareAsync("", durable: false, exclusive: true, autoDelete: true)).QueueName;
        await channel.QueueBindAsync(queue, BrokerNames.EventsExchange, "lane.#");
        await _fleet.Producer.PauseLaneAsync(SessionLane.Generate);
        foreach (var i in Enumerable.Range(1, 8))
            await _fleet.Producer.SubmitTaskAsync(ExternalTask.Create($"p-{i}", SessionLane.Generate));
        var seen = new ConcurrentQueue<string>();
        async Task<bool> SeenAsync(string what)
        {
            while (await channel.BasicGetAsync(queue, autoAck: true) is { } message)
            {
                using var json = JsonDocument.Parse(message.Body);
                seen.Enqueue($"{json.RootElement.GetProperty("event").GetString()}:{json.RootElement.GetProperty("lane").GetString()}");
            }
            return seen.Contains(what);
        }
        await TestVhost.EventuallyAsync(() => SeenAsync("lane.pressure:generate"), "lane.pressure for generate");
        await _fleet.Producer.ResumeLaneAsync(SessionLane.Generate);
        await TestVhost.EventuallyAsync(() => SeenAsync("lane.idle:generate"), "lane.idle for generate once it drained");
        await Task.Delay(1000); // a second consumer's copy of the events, if any, would be here by now
        while (await channel.BasicGetAsync(queue, autoAck: true) is { } late)
            seen.Enqueue(JsonDocument.Parse(late.Body).RootElement.GetProperty("event").GetString() + ":late");
        Assert.Equal(["lane.pressure:generate", "lane.idle:generate"], seen);
    }

    [Fact]
    public async Task A_delivery_waiting_for_a_slot_when_an_operator_pauses_its_lane_goes_back_to_its_lane_not_started()
    {
        var log = new StartLog();
        // One slot, two generate deliveries: the first runs, the second waits inside the consumer for the slot.
        var consumer = await _fleet.StartConsumerAsync("one-slot", o =>
        {
            o.SlotBudget = 1;
            o.Queue = o.Queue with { GenerateMaxConcurrency = 2 };
        }, h => h.AddHandler(StartLog.CommandType, log.HandleAsync));
        await _fleet.Producer.SubmitTaskAsync(StartLog.Make("g-running", SessionLane.Generate, 3000));
        await TestVhost.EventuallyAsync(() => Task.FromResult(log.StartOf("g-running") is not null), "the first generate task running");
        await _fleet.Producer.SubmitTaskAsync(StartLog.Make("g-waiting", SessionLane.Generate, 10));
        var generate = BrokerNames.LaneQueue(SessionLane.Generate);
        await TestVhost.EventuallyAsync(() => Task.FromResult(consumer.Services.GetRequiredService<LaneSlots>().WaitingIn(SessionLane.Generate) == 1),
            "the second delivered to the consumer, waiting for the slot");

        await _fleet.Producer.PauseLaneAsync(SessionLane.Generate);
        await TestVhost.EventuallyAsync(async () => await _fleet.Vhost.ReadyAsync(generate) == 1, "the waiting task back in its lane");
        Assert.Null(log.StartOf("g-waiting"));
        Assert.False(log.Finished.Contains("g-running"), "returned before the running task ended: the pause does not wait for the slot");

        await _fleet.Producer.ResumeLaneAsync(SessionLane.Generate);
        await TestVhost.EventuallyAsync(() => Task.FromResult(log.StartOf("g-waiting") is not null), "the returned task ran once the lane resumed");
        Assert.Single(log.Starts, s => s.Id == "g-waiting");
    }

    /// <summary>
    /// An operator's pause stops that lane only: with control paused and control work ready at the broker, the lanes below it
    /// go on (the rule before 1.0 held every lower lane behind it until aging let them through).
    /// </summary>
    [Fact]
    public async Task Pausing_a_higher_lane_with_work_waiting_does_not_hold_the_lanes_below_it()
    {
        var log = new StartLog();
        var consumer = await _fleet.StartConsumerAsync("pause-one", configure: null, h => h.AddHandler(StartLog.CommandType, log.HandleAsync));
        await _fleet.Producer.PauseLaneAsync(SessionLane.Control);
        await TestVhost.EventuallyAsync(() => Task.FromResult(consumer.IsPaused(SessionLane.Control)), "control paused");
        foreach (var i in Enumerable.Range(1, 5))
            await _fleet.Producer.SubmitTaskAsync(StartLog.Make($"c-{i}", SessionLane.Control, 10));
        await TestVhost.EventuallyAsync(() => Task.FromResult(consumer.Gate().LastReady[(int)SessionLane.Control] == 5), "the gate reads control's 5 ready");
        foreach (var lane in new[] { SessionLane.Query, SessionLane.Execute, SessionLane.Generate })
            await _fleet.Producer.SubmitTaskAsync(StartLog.Make($"x-{lane.WireName()}", lane, 10));
        await TestVhost.EventuallyAsync(() => Task.FromResult(log.Finished.Count == 3), "query, execute and generate ran while control was paused", 20);
        Assert.DoesNotContain(log.Starts, s => s.Lane == SessionLane.Control);

        await _fleet.Producer.ResumeLaneAsync(SessionLane.Control);
        await TestVhost.EventuallyAsync(() => Task.FromResult(log.Finished.Count == 8), "control ran once resumed");
    }

    static bool IsMonitor(Microsoft.Extensions.Hosting.IHost host) => host.Services.GetRequiredService<FleetMonitor>().IsMonitor;
}
