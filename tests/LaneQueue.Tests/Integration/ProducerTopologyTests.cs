using System.Net.Http.Json;
using System.Text.Json;
using LaneQueue.Consumer;
using LaneQueue.Contracts;
using LaneQueue.Producer;
using LaneQueue.Tests.Broker;
using Xunit.Abstractions;

namespace LaneQueue.Tests.Integration;

/// <summary>
/// The lane topology from its one definition: a producer declares it (a submit before any consumer is kept), consumers
/// declare the same before MassTransit does, and a producer or consumer configured differently from the broker's lanes
/// fails clearly, naming the setting.
/// </summary>
[Collection(BrokerCollection.Name)]
public sealed class ProducerTopologyTests(BrokerFixture broker, ITestOutputHelper output)
{
    static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    [Theory]
    [InlineData(LaneTopology.QueuePerLane)]
    [InlineData(LaneTopology.PriorityQueue)]
    public async Task A_task_submitted_before_any_consumer_started_is_kept_and_run_by_a_consumer_started_later(LaneTopology topology)
    {
        await using var vhost = await broker.CreateVhostAsync();
        await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = vhost.Url, Topology = topology });
        var result = await producer.WatchResultAsync("early-1");

        await producer.SubmitTaskAsync(ExternalTask.Create("early-1", SessionLane.Execute, new { n = 1 }));
        var queue = topology == LaneTopology.PriorityQueue ? BrokerNames.PriorityQueue : BrokerNames.LaneQueue(SessionLane.Execute);
        Assert.Equal(1u, await vhost.ReadyAsync(queue));

        var consumer = await ConsumerHost.StartAsync(vhost.Url, o => o.Topology = topology);
        try
        {
            var done = await result.WaitAsync(Wait);
            Assert.True(done.Success, done.Error);
            Assert.Equal("early-1", done.TaskId);
        }
        finally
        {
            await consumer.StopQuietlyAsync();
        }
    }

    [Theory]
    [InlineData(LaneTopology.QueuePerLane, false, null)]
    [InlineData(LaneTopology.QueuePerLane, true, 5)]
    [InlineData(LaneTopology.PriorityQueue, false, null)]
    public async Task The_consumer_declares_the_lanes_from_the_shared_definition_and_MassTransit_declares_the_same(LaneTopology topology, bool quorum, int? limit)
    {
        await using var vhost = await broker.CreateVhostAsync();
        // BrokerSetup declares from the definition first; MassTransit's own declaration would be refused (406) if it differed.
        var consumer = await ConsumerHost.StartAsync(vhost.Url, o =>
        {
            o.Topology = topology;
            o.QuorumQueues = quorum;
            o.DeliveryLimit = limit;
        });
        try
        {
            var definition = new LaneQueueTopology(topology, quorum, limit);
            foreach (var queue in definition.Queues)
            {
                var declared = (await vhost.QueueAsync(queue.Name))!.Value;
                Assert.True(declared.GetProperty("durable").GetBoolean());
                Assert.Equal(quorum ? "quorum" : "classic", declared.GetProperty("type").GetString());
                var arguments = declared.GetProperty("arguments").EnumerateObject().ToDictionary(p => p.Name, p => (string?)p.Value.ToString());
                Assert.Equal(queue.Arguments.ToDictionary(a => a.Key, a => Convert.ToString(a.Value, System.Globalization.CultureInfo.InvariantCulture)), arguments);
                var exchange = await broker.Management.GetFromJsonAsync<JsonElement>($"api/exchanges/{Uri.EscapeDataString(vhost.Name)}/{Uri.EscapeDataString(queue.Name)}");
                Assert.Equal("fanout", exchange.GetProperty("type").GetString());
                Assert.Equal(queue.ErrorQueue is not null, await vhost.QueueAsync(BrokerNames.DeadLetterQueue(queue.Name)) is not null);
            }

            var bindings = (await broker.Management.GetFromJsonAsync<List<JsonElement>>($"api/bindings/{Uri.EscapeDataString(vhost.Name)}"))!
                .Select(b => (Source: b.GetProperty("source").GetString()!, Destination: b.GetProperty("destination").GetString()!,
                    Type: b.GetProperty("destination_type").GetString()!, Key: b.GetProperty("routing_key").GetString()!))
                .ToList();
            var expected = definition.Queues.SelectMany(q => q.Lanes.Select(l => (BrokerNames.TasksExchange, q.Name, "exchange", BrokerNames.RoutingKey(l)))
                .Append((q.Name, q.Name, "queue", ""))).Order().ToList();
            Assert.Equal(expected, bindings.Where(b => b.Source == BrokerNames.TasksExchange || definition.Queues.Any(q => q.Name == b.Source)).Order().ToList());
        }
        finally
        {
            await consumer.StopQuietlyAsync();
        }
    }

    [Fact]
    public async Task A_producer_with_classic_queues_against_a_quorum_consumer_is_refused_naming_the_setting()
    {
        await using var vhost = await broker.CreateVhostAsync();
        var consumer = await ConsumerHost.StartAsync(vhost.Url, o =>
        {
            o.QuorumQueues = true;
            o.DeliveryLimit = 20;
        });
        try
        {
            var error = await Assert.ThrowsAsync<TaskRejectedException>(() => LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = vhost.Url }));
            output.WriteLine(error.Message);

            Assert.IsType<TopologyMismatchException>(error.InnerException);
            Assert.StartsWith($"LaneQueue:QuorumQueues and LaneQueue:DeliveryLimit do not match the existing queue '{BrokerNames.LaneQueue(SessionLanes.All[0])}' (",
                error.Message, StringComparison.Ordinal);
            Assert.Contains("x-queue-type: classic here, quorum on the broker", error.Message, StringComparison.Ordinal);
            Assert.Contains("x-delivery-limit: none here, 20 on the broker", error.Message, StringComparison.Ordinal);
            Assert.Contains("(LaneQueue:QuorumQueues=true, LaneQueue:DeliveryLimit=20)", error.Message, StringComparison.Ordinal);
            Assert.Contains("PRECONDITION_FAILED", error.Message, StringComparison.Ordinal);

            // Configured like the consumer, the producer works; the refused one changed nothing.
            await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = vhost.Url, QuorumQueues = true, DeliveryLimit = 20 });
            Assert.True((await producer.SubmitAndWaitAsync(ExternalTask.Create("matching-1", SessionLane.Query), Wait)).Success);
        }
        finally
        {
            await consumer.StopQuietlyAsync();
        }
    }

    [Fact]
    public async Task A_classic_consumer_against_quorum_lanes_a_producer_declared_fails_to_start_naming_the_setting()
    {
        await using var vhost = await broker.CreateVhostAsync();
        await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = vhost.Url, QuorumQueues = true });

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => ConsumerHost.StartAsync(vhost.Url));
        output.WriteLine(error.Message);

        Assert.IsType<TopologyMismatchException>(error.InnerException);
        Assert.Contains($"LaneQueue:QuorumQueues does not match the existing queue '{BrokerNames.LaneQueue(SessionLanes.All[0])}' " +
                        "(x-queue-type: classic here, quorum on the broker)", error.Message, StringComparison.Ordinal);
        Assert.Equal(0u, await vhost.ConsumersAsync(BrokerNames.LaneQueue(SessionLane.Query)));
    }

    [Fact]
    public async Task A_different_delivery_limit_is_refused_naming_both_limits()
    {
        await using var vhost = await broker.CreateVhostAsync();
        await using var first = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = vhost.Url, QuorumQueues = true, DeliveryLimit = 5 });

        var error = await Assert.ThrowsAsync<TaskRejectedException>(() =>
            LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = vhost.Url, QuorumQueues = true, DeliveryLimit = 7 }));
        output.WriteLine(error.Message);

        Assert.StartsWith("LaneQueue:DeliveryLimit does not match the existing queue", error.Message, StringComparison.Ordinal);
        Assert.Contains("(x-delivery-limit: 7 here, 5 on the broker)", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_producer_of_the_other_topology_is_refused_instead_of_binding_queues_nobody_reads()
    {
        await using var vhost = await broker.CreateVhostAsync();
        await using var first = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = vhost.Url, Topology = LaneTopology.PriorityQueue });

        var error = await Assert.ThrowsAsync<TaskRejectedException>(() => LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = vhost.Url }));
        output.WriteLine(error.Message);

        Assert.StartsWith("LaneQueue:Topology does not match the broker: QueuePerLane here, but queue 'lanequeue.priority' of the PriorityQueue topology exists",
            error.Message, StringComparison.Ordinal);
        Assert.Null(await vhost.QueueAsync(BrokerNames.LaneQueue(SessionLane.Query)));
    }
}
