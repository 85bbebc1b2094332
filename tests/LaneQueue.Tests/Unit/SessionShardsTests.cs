using LaneQueue.Consumer;
using LaneQueue.Contracts;
using LaneQueue.Producer;

namespace LaneQueue.Tests.Unit;

/// <summary>Session shards: the hash every client computes, the names, and the topology that declares them.</summary>
public sealed class SessionShardsTests
{
    [Fact]
    public void The_shard_is_fnv1a_32_of_the_session_ids_utf8_bytes_modulo_the_count()
    {
        // FNV-1a (32-bit) reference values: "" = 0x811c9dc5, "a" = 0xe40c292c, "foobar" = 0xbf9cf968.
        Assert.Equal((int)(0x811c9dc5u % 7), SessionShards.Of("", 7));
        Assert.Equal((int)(0xe40c292cu % 8), SessionShards.Of("a", 8));
        Assert.Equal((int)(0xbf9cf968u % 64), SessionShards.Of("foobar", 64));
        Assert.Equal(0, SessionShards.Of("anything", 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => SessionShards.Of("a", 0));
    }

    [Fact]
    public void A_task_with_a_session_goes_to_its_shard_and_one_without_to_its_lane()
    {
        Assert.Equal($"generate.s{SessionShards.Of("s1", 8):00}", SessionShards.RoutingKeyFor(SessionLane.Generate, "s1", 8));
        Assert.Equal("generate", SessionShards.RoutingKeyFor(SessionLane.Generate, null, 8));
        Assert.Equal("generate", SessionShards.RoutingKeyFor(SessionLane.Generate, "s1", 0));
        Assert.Equal("lanequeue.execute.s03", SessionShards.Queue(SessionLane.Execute, 3));
    }

    [Fact]
    public void A_shard_queue_belongs_to_its_lane_and_dead_letters_to_the_lanes_error_queue()
    {
        Assert.Equal(SessionLane.Generate, SessionShards.LaneOf("lanequeue.generate.s07"));
        Assert.Null(SessionShards.LaneOf("lanequeue.generate"));
        Assert.Null(SessionShards.LaneOf("lanequeue.nolane.s01"));
        Assert.Null(SessionShards.LaneOf("lanequeue.generate.sx1"));
        Assert.Equal("lanequeue.generate_error", BrokerNames.DeadLetterQueue("lanequeue.generate.s07"));
        Assert.Equal("lanequeue.generate_error", BrokerNames.DeadLetterQueue("lanequeue.generate"));
        Assert.Equal("other_error", BrokerNames.DeadLetterQueue("other"));
    }

    [Fact]
    public void The_topology_declares_each_shard_after_its_lane_bound_to_its_own_routing_key()
    {
        var topology = new LaneQueueTopology(LaneTopology.QueuePerLane, QuorumQueues: true, DeliveryLimit: 3,
            new Dictionary<SessionLane, int> { [SessionLane.Generate] = 2 });
        var generate = topology.Queues.Where(q => q.Lanes.SequenceEqual([SessionLane.Generate])).ToList();

        Assert.Equal(["lanequeue.generate", "lanequeue.generate.s00", "lanequeue.generate.s01"], generate.Select(q => q.Name));
        Assert.Equal(["generate"], generate[0].RoutingKeys);
        Assert.Equal(["generate.s01"], generate[2].RoutingKeys);
        // Same arguments as the lane (quorum, delivery limit), dead-lettering to the lane's error queue.
        Assert.Equal("lanequeue.generate_error", generate[1].Arguments[LaneQueueTopology.DeadLetterExchangeArgument]);
        Assert.Equal("lanequeue.generate_error", generate[2].ErrorQueue);
        Assert.Equal(4 + 2, topology.Queues.Count);
        // None in the priority-queue topology.
        Assert.Single(new LaneQueueTopology(LaneTopology.PriorityQueue, false, null, new Dictionary<SessionLane, int> { [SessionLane.Generate] = 2 }).Queues);
    }

    [Fact]
    public void A_sessions_retries_and_delays_go_back_to_its_shard()
    {
        Assert.Equal("lanequeue.generate.s03.retry.2000ms", BrokerNames.RetryQueue("generate.s03", TimeSpan.FromSeconds(2)));
        Assert.Equal(BrokerNames.RetryQueue(SessionLane.Generate, TimeSpan.FromSeconds(2)), BrokerNames.RetryQueue("generate", TimeSpan.FromSeconds(2)));
        Assert.Null(SessionShards.LaneOf("lanequeue.generate.s03.retry.2000ms"));
        Assert.EndsWith(".generate.s03", DelayTopology.RoutingKey(TimeSpan.FromSeconds(3), "generate.s03"), StringComparison.Ordinal);
        Assert.Equal(DelayTopology.RoutingKey(TimeSpan.FromSeconds(3), SessionLane.Generate), DelayTopology.RoutingKey(TimeSpan.FromSeconds(3), "generate"));
    }

    [Fact]
    public void A_lane_with_shards_and_a_session_limit_has_single_active_consumer_shards_and_a_plain_lane_queue()
    {
        var topology = new LaneQueueTopology(LaneTopology.QueuePerLane, false, null,
            new Dictionary<SessionLane, int> { [SessionLane.Generate] = 2, [SessionLane.Execute] = 2 },
            new Dictionary<SessionLane, int> { [SessionLane.Generate] = 1 });
        var byName = topology.Queues.ToDictionary(q => q.Name);

        Assert.Equal(true, byName["lanequeue.generate.s01"].Arguments[LaneQueueTopology.SingleActiveConsumerArgument]);
        Assert.False(byName["lanequeue.generate"].Arguments.ContainsKey(LaneQueueTopology.SingleActiveConsumerArgument));
        Assert.False(byName["lanequeue.execute.s01"].Arguments.ContainsKey(LaneQueueTopology.SingleActiveConsumerArgument));
        Assert.NotEqual(topology, topology with { SessionLimits = null });
    }

    [Fact]
    public void Shard_counts_out_of_range_are_refused_naming_the_setting()
    {
        var consumer = new LaneQueueOptions();
        consumer.SessionShards[SessionLane.Generate] = SessionShards.Max + 1;
        Assert.Contains(LaneQueueOptionsValidator.SchedulingProblems(consumer), p => p.Contains("LaneQueue:SessionShards:Generate", StringComparison.Ordinal));
        var producer = new ProducerOptions();
        producer.SessionShards[SessionLane.Generate] = -1;
        Assert.Contains(ProducerOptionsValidator.Problems(producer), p => p.Contains("LaneQueue:SessionShards:Generate", StringComparison.Ordinal));
    }
}
