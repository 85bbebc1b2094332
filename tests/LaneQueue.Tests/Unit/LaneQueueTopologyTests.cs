using LaneQueue.Contracts;
using LaneQueue.Producer;

namespace LaneQueue.Tests.Unit;

/// <summary>The one definition of the lane queues: names, lanes and the arguments MassTransit's receive endpoints declare.</summary>
public sealed class LaneQueueTopologyTests
{
    [Fact]
    public void Queue_per_lane_with_classic_queues_has_one_queue_per_lane_and_no_arguments()
    {
        var queues = new LaneQueueTopology(LaneTopology.QueuePerLane, QuorumQueues: false, DeliveryLimit: null).Queues;

        Assert.Equal(SessionLanes.All.Select(BrokerNames.LaneQueue), queues.Select(q => q.Name));
        foreach (var queue in queues)
        {
            Assert.Equal([queue.Lanes.Single()], queue.Lanes);
            Assert.Equal(BrokerNames.LaneQueue(queue.Lanes[0]), queue.Name);
            Assert.Empty(queue.Arguments);
            Assert.Null(queue.ErrorQueue);
        }
    }

    [Fact]
    public void Quorum_queues_carry_their_type()
    {
        var queue = new LaneQueueTopology(LaneTopology.QueuePerLane, QuorumQueues: true, DeliveryLimit: null).Queues[0];

        Assert.Equal(new Dictionary<string, object?> { ["x-queue-type"] = "quorum" }, queue.Arguments);
        Assert.Null(queue.ErrorQueue);
    }

    [Fact]
    public void A_delivery_limit_dead_letters_to_the_queues_error_exchange()
    {
        var queue = new LaneQueueTopology(LaneTopology.QueuePerLane, QuorumQueues: true, DeliveryLimit: 5).Queues
            .Single(q => q.Name == BrokerNames.LaneQueue(SessionLane.Query));

        Assert.Equal(new Dictionary<string, object?>
        {
            ["x-queue-type"] = "quorum",
            ["x-delivery-limit"] = 5,
            ["x-dead-letter-exchange"] = "lanequeue.query_error",
        }, queue.Arguments);
        Assert.IsType<int>(queue.Arguments["x-delivery-limit"]);
        Assert.Equal("lanequeue.query_error", queue.ErrorQueue);
    }

    [Fact]
    public void A_delivery_limit_without_quorum_queues_declares_nothing_like_the_consumer()
    {
        var queue = new LaneQueueTopology(LaneTopology.QueuePerLane, QuorumQueues: false, DeliveryLimit: 5).Queues[0];
        Assert.Empty(queue.Arguments);
    }

    [Fact]
    public void The_priority_queue_takes_every_lane_with_x_max_priority_4()
    {
        var queue = Assert.Single(new LaneQueueTopology(LaneTopology.PriorityQueue, QuorumQueues: false, DeliveryLimit: null).Queues);

        Assert.Equal(BrokerNames.PriorityQueue, queue.Name);
        Assert.Equal(SessionLanes.All, queue.Lanes);
        Assert.Equal(new Dictionary<string, object?> { ["x-max-priority"] = 4 }, queue.Arguments);
        Assert.IsType<int>(queue.Arguments["x-max-priority"]);
    }

    [Fact]
    public void The_priority_queue_with_quorum_and_a_limit_has_what_the_endpoint_would_ask_for()
    {
        var queue = Assert.Single(new LaneQueueTopology(LaneTopology.PriorityQueue, QuorumQueues: true, DeliveryLimit: 3).Queues);

        Assert.Equal(new Dictionary<string, object?>
        {
            ["x-queue-type"] = "quorum",
            ["x-delivery-limit"] = 3,
            ["x-dead-letter-exchange"] = "lanequeue.priority_error",
            ["x-max-priority"] = 4,
        }, queue.Arguments);
    }

    [Fact]
    public void Each_topology_knows_the_queues_of_the_other()
    {
        Assert.Equal([BrokerNames.PriorityQueue], new LaneQueueTopology(LaneTopology.QueuePerLane, false, null).OtherTopologyQueues);
        Assert.Equal(SessionLanes.All.Select(BrokerNames.LaneQueue), new LaneQueueTopology(LaneTopology.PriorityQueue, false, null).OtherTopologyQueues);
    }

    [Fact]
    public void The_producer_options_give_the_topology_with_the_consumers_defaults()
    {
        Assert.Equal(new LaneQueueTopology(LaneTopology.QueuePerLane, false, null), LaneQueueTopology.For(new ProducerOptions()));
        Assert.Equal(new LaneQueueTopology(LaneTopology.PriorityQueue, true, 7),
            LaneQueueTopology.For(new ProducerOptions { Topology = LaneTopology.PriorityQueue, QuorumQueues = true, DeliveryLimit = 7 }));
        var consumer = new LaneQueueOptions();
        Assert.Equal((consumer.Topology, consumer.QuorumQueues, consumer.DeliveryLimit), (new ProducerOptions().Topology, new ProducerOptions().QuorumQueues, new ProducerOptions().DeliveryLimit));
    }

    [Fact]
    public void A_queue_type_mismatch_names_the_setting_and_both_values()
    {
        const string reply = "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'lanequeue.query' in vhost 'v': received none but current is the value 'quorum' of type 'longstr'";
        var difference = TopologyMismatchException.Parse(reply, new Dictionary<string, object?>());

        Assert.Equal(new TopologyMismatchException.Difference("x-queue-type", null, "quorum", "longstr"), difference);
        var error = TopologyMismatchException.Describe("lanequeue.query", [difference!], reply, new InvalidOperationException());
        Assert.StartsWith("LaneQueue:QuorumQueues does not match the existing queue 'lanequeue.query' (x-queue-type: classic here, quorum on the broker)", error.Message, StringComparison.Ordinal);
        Assert.Contains("LaneQueue:QuorumQueues=true", error.Message, StringComparison.Ordinal);
        Assert.EndsWith(reply, error.Message, StringComparison.Ordinal);
        Assert.Equal("LaneQueue:QuorumQueues", error.Setting);
    }

    [Fact]
    public void A_delivery_limit_mismatch_names_the_setting_and_both_values()
    {
        const string reply = "PRECONDITION_FAILED - inequivalent arg 'x-delivery-limit' for queue 'lanequeue.query' in vhost 'v': received '7' but current is '5'";
        var difference = TopologyMismatchException.Parse(reply, new Dictionary<string, object?> { ["x-delivery-limit"] = 7 });

        Assert.Equal(new TopologyMismatchException.Difference("x-delivery-limit", "7", "5", null), difference);
        var error = TopologyMismatchException.Describe("lanequeue.query", [difference!], reply, new InvalidOperationException());
        Assert.StartsWith("LaneQueue:DeliveryLimit does not match the existing queue 'lanequeue.query' (x-delivery-limit: 7 here, 5 on the broker)", error.Message, StringComparison.Ordinal);
        Assert.Contains("LaneQueue:DeliveryLimit=5", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Several_differences_lead_with_the_queue_type()
    {
        TopologyMismatchException.Difference[] differences =
        [
            new("x-dead-letter-exchange", null, "lanequeue.query_error", "longstr"),
            new("x-delivery-limit", null, "20", "signedint"),
            new("x-queue-type", null, "quorum", "longstr"),
        ];
        var error = TopologyMismatchException.Describe("lanequeue.query", differences, "reply", new InvalidOperationException());

        Assert.StartsWith("LaneQueue:QuorumQueues and LaneQueue:DeliveryLimit do not match the existing queue 'lanequeue.query' (", error.Message, StringComparison.Ordinal);
        Assert.Contains("x-queue-type: classic here, quorum on the broker", error.Message, StringComparison.Ordinal);
        Assert.Contains("x-delivery-limit: none here, 20 on the broker", error.Message, StringComparison.Ordinal);
        Assert.Contains("(LaneQueue:QuorumQueues=true, LaneQueue:DeliveryLimit=20)", error.Message, StringComparison.Ordinal);
        Assert.Equal("LaneQueue:QuorumQueues", error.Setting);
    }

    [Fact]
    public void A_reply_that_is_not_an_argument_mismatch_is_not_parsed()
    {
        Assert.Null(TopologyMismatchException.Parse("ACCESS_REFUSED - configure access to queue 'lanequeue.query' refused", new Dictionary<string, object?>()));
    }

    [Fact]
    public void The_consumer_takes_its_poison_message_arguments_from_the_definition()
    {
        Assert.Empty(LaneQueueTopology.DeadLetterArguments("lanequeue.query", null));
        Assert.Equal(new Dictionary<string, object?> { ["x-delivery-limit"] = 9, ["x-dead-letter-exchange"] = "lanequeue.generate_error" },
            LaneQueueTopology.DeadLetterArguments("lanequeue.generate", 9));
    }
}
