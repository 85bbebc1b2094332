using LaneQueue.Contracts;

namespace LaneQueue.Producer;

/// <summary>
/// Producer settings. <see cref="ProducerRegistration.AddLaneQueueProducer(Microsoft.Extensions.DependencyInjection.IServiceCollection, Action{ProducerOptions}?)"/>
/// binds them from the <c>LaneQueue</c> configuration section, the consumer's section, so one <c>LaneQueue:RabbitMqUrl</c>
/// (and one <c>LaneQueue:Topology</c>, <c>QuorumQueues</c>, <c>DeliveryLimit</c>) serves both; scripts pass them to
/// <see cref="LaneQueueProducer.ConnectAsync"/>. The lane settings must match the consumers' (the producer declares the
/// lane queues with them, and the broker refuses a declaration that differs from an existing queue).
/// </summary>
public sealed record ProducerOptions
{
    /// <summary>The configuration section the options are bound from (the consumer's).</summary>
    public const string Section = "LaneQueue";

    /// <summary>Broker URL (see the README for host lists and TLS options); defaults to <c>LANEQUEUE_RABBITMQ_URL</c>.</summary>
    public string RabbitMqUrl { get; set; } = BrokerConnection.UrlFromEnvironment();

    /// <summary>Largest payload a submit accepts (the consumers' <c>LaneQueue:MaxPayloadBytes</c>).</summary>
    public int MaxPayloadBytes { get; set; } = TaskParser.DefaultMaxPayloadBytes;

    /// <summary>Shown in the broker's connection list.</summary>
    public string ClientName { get; set; } = $"lanequeue-producer@{Environment.MachineName}";

    /// <summary>
    /// How long a submit waits for the connection's automatic recovery (broker restart, network cut, cluster fail-over)
    /// and publishes again, before it fails with <see cref="TaskRejectedException"/>. Zero: fail at once.
    /// </summary>
    public TimeSpan RecoveryTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>The lane topology of the consumers (default <see cref="LaneTopology.QueuePerLane"/>, like theirs).</summary>
    public LaneTopology Topology { get; set; } = LaneTopology.QueuePerLane;

    /// <summary>Whether the consumers declare the lane queues as quorum queues (default false, like theirs).</summary>
    public bool QuorumQueues { get; set; }

    /// <summary>The consumers' delivery limit of the quorum lane queues (<c>x-delivery-limit</c>); null: none (their default).</summary>
    public int? DeliveryLimit { get; set; }

    /// <summary>
    /// Session shards per lane (e.g. <c>SessionShards:Generate=8</c>): a task with a <c>session_id</c> goes to its session's
    /// shard queue of the lane (<see cref="Contracts.SessionShards"/>), so sessions take turns across the fleet. At most the
    /// consumers' count for the lane (they refuse to start beside a shard they do not take). None by default.
    /// </summary>
    public Dictionary<SessionLane, int> SessionShards { get; set; } = [];

    /// <summary>
    /// Tasks of one session that may run at once per lane (e.g. <c>SessionLimits:Generate=1</c>: sequential), as the consumers
    /// have it: with <see cref="SessionShards"/> on the lane its shard queues take one consumer at a time, which the producer
    /// declares alike. None by default.
    /// </summary>
    public Dictionary<SessionLane, int> SessionLimits { get; set; } = [];

    /// <summary>How long the task history stream keeps events (RabbitMQ <c>x-max-age</c>: 7D, 12h, ...); the consumers' value.</summary>
    public string HistoryMaxAge { get; set; } = BrokerTopology.DefaultHistoryMaxAge;

    /// <summary>Size cap of the task history stream (<c>x-max-length-bytes</c>); the consumers' value.</summary>
    public long HistoryMaxBytes { get; set; } = BrokerTopology.DefaultHistoryMaxBytes;
}
