using System.Collections.Concurrent;
using System.Text.Json;
using LaneQueue.Consumer;
using LaneQueue.Contracts;
using LaneQueue.Tests.Broker;
using Microsoft.Extensions.DependencyInjection;
using RabbitMQ.Client;

namespace LaneQueue.Tests.Integration;

/// <summary>
/// The lane gate with one monitor per fleet: exactly one consumer reads the depths and raises the lane events, and a
/// lower-lane delivery a consumer already holds when the gate closes its lane is returned to the lane, not started.
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
    public async Task A_delivery_waiting_for_a_slot_when_the_gate_closes_its_lane_is_returned_not_started()
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
        await TestVhost.EventuallyAsync(async () => await _fleet.Vhost.ReadyAsync(generate) == 0, "the second delivered to the consumer");

        // Queries wait (query paused by an operator), so the gate closes generate while the second task waits for the slot.
        await _fleet.Producer.PauseLaneAsync(SessionLane.Query);
        await TestVhost.EventuallyAsync(() => Task.FromResult(consumer.IsPaused(SessionLane.Query)), "query paused");
        await _fleet.Producer.SubmitTaskAsync(StartLog.Make("q-1", SessionLane.Query, 10));
        await TestVhost.EventuallyAsync(() => Task.FromResult(consumer.Services.GetRequiredService<LaneEndpoints>().IsHeldByGate(SessionLane.Generate)), "the gate holds generate");
        await TestVhost.EventuallyAsync(() => Task.FromResult(log.Finished.Contains("g-running")), "the first generate task finished");
        await TestVhost.EventuallyAsync(async () => await _fleet.Vhost.ReadyAsync(generate) == 1, "the waiting task back in its lane");
        Assert.Null(log.StartOf("g-waiting"));

        await _fleet.Producer.ResumeLaneAsync(SessionLane.Query);
        await TestVhost.EventuallyAsync(() => Task.FromResult(log.StartOf("g-waiting") is not null), "the returned task ran once the query lane drained");
        Assert.True(log.StartOf("q-1")!.Sequence < log.StartOf("g-waiting")!.Sequence);
        Assert.Single(log.Starts, s => s.Id == "g-waiting");
    }

    static bool IsMonitor(Microsoft.Extensions.Hosting.IHost host) => host.Services.GetRequiredService<FleetMonitor>().IsMonitor;
}
