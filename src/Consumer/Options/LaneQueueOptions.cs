using LaneQueue.Contracts;
using LaneQueue.Producer;
using Microsoft.Extensions.Options;

namespace LaneQueue.Consumer;

/// <summary>Consumer settings, bound from the <c>LaneQueue</c> configuration section (env: <c>LaneQueue__Name</c>).</summary>
public sealed class LaneQueueOptions
{
    public const string Section = "LaneQueue";

    /// <summary>Broker URL; defaults to <c>LANEQUEUE_RABBITMQ_URL</c>.</summary>
    public string RabbitMqUrl { get; set; } = BrokerConnection.UrlFromEnvironment();

    /// <summary>Shown in results, logs and the broker's connection list.</summary>
    public string ConsumerName { get; set; } = $"{Environment.MachineName}-{Environment.ProcessId}";

    public LaneTopology Topology { get; set; } = LaneTopology.QueuePerLane;

    /// <summary>Declare the lane queues as quorum queues (replicated; for clusters).</summary>
    public bool QuorumQueues { get; set; }

    /// <summary>
    /// With <see cref="QuorumQueues"/>: deliveries of one message after which the broker dead-letters it to the lane's
    /// <c>_error</c> queue (<c>x-delivery-limit</c>), so a task that kills every consumer taking it cannot loop forever.
    /// Every return counts (crash, connection loss, a lane paused with the message prefetched): keep it generous. Null: no limit.
    /// </summary>
    public int? DeliveryLimit { get; set; }

    /// <summary>
    /// With <see cref="DeliveryLimit"/>: a process holds at most one crash suspect (a task held by a process that died) at a
    /// time, and puts others in a short hold, so a task that crashes its consumer is dead-lettered alone instead of with the
    /// tasks held beside it in every crash (<see cref="CrashSuspects"/>). Default true.
    /// </summary>
    public bool IsolateCrashSuspects { get; set; } = true;

    /// <summary>
    /// How long the task history stream <c>lanequeue.history</c> keeps events and results (RabbitMQ <c>x-max-age</c>: a whole
    /// number and one of Y, M, D, h, m, s). Producers must use the same value (the broker refuses a declaration that differs).
    /// </summary>
    public string HistoryMaxAge { get; set; } = BrokerTopology.DefaultHistoryMaxAge;

    /// <summary>Size cap of the task history stream (<c>x-max-length-bytes</c>), at least 1 MiB; default 5 GiB.</summary>
    public long HistoryMaxBytes { get; set; } = BrokerTopology.DefaultHistoryMaxBytes;

    /// <summary>
    /// Largest payload (bytes of its JSON) the <c>command.started</c> event carries into the task history, so the task page and
    /// <c>lanequeue task show</c> show what ran; a larger one is noted by size only. 0 keeps no payloads. Default 64 KiB.
    /// </summary>
    public int HistoryPayloadMaxBytes { get; set; } = 64 * 1024;

    /// <summary>Tasks this process runs at once over all lanes, on top of each lane's max concurrency.</summary>
    public int SlotBudget { get; set; } = 4;

    /// <summary>
    /// Deliveries a lane's endpoint holds, per unit of the lane's max concurrency (queue per lane): 4 by default, the lane's
    /// limit running and three times as many next ones here before a slot frees, some of them tasks whose handler returned
    /// while their result is confirmed and acked. Under load those confirms take longer than a short task, and with 2 (the
    /// default up to 1.3) they fill the window and the lane waits for the broker (bench/results/throughput: 0.92x the minimal
    /// MassTransit consumer at 4, 0.66x at 2). Bodies over the limit that reach the consumer do not stay in its memory at 4
    /// either (<c>OversizedBodyMemoryTests</c>; <see cref="MemoryTrim"/>). Lower it for lanes of long tasks whose deliveries
    /// should rather wait at the broker for another process. A lane holds at least 2 more than its limit whatever the setting.
    /// </summary>
    public int PrefetchPerLimit { get; set; } = 4;

    /// <summary>
    /// Slots of <see cref="SlotBudget"/> kept for a lane and the lanes above it (e.g. <c>ReservedSlots:Query=1</c>: a query
    /// behind a full generate backlog starts without waiting for a generate task to end). None by default; at most the budget.
    /// </summary>
    public Dictionary<SessionLane, int> ReservedSlots { get; set; } = [];

    /// <summary>
    /// Session shards per lane (e.g. <c>SessionShards:Generate=8</c>, queue per lane only): the lane gets that many more queues,
    /// <c>lanequeue.&lt;lane&gt;.s00</c> on, and producers send a task with a <c>session_id</c> to its session's shard
    /// (<see cref="Contracts.SessionShards"/>). This process takes every shard of the lane and gives the lane's slots to the
    /// sessions it holds in turn, so one session's backlog no longer delays every later session. Producers must shard a lane
    /// no more than its consumers (a consumer refuses to start beside a shard it does not take). None by default.
    /// </summary>
    public Dictionary<SessionLane, int> SessionShards { get; set; } = [];

    /// <summary>
    /// Tasks of one session that may run at once in a lane (e.g. <c>SessionLimits:Generate=1</c>: sequential, in submit order);
    /// the session's other tasks wait and the lane's slots go to other sessions meanwhile. This process keeps it for the
    /// tasks it holds; with <see cref="SessionShards"/> on the lane the shard queues take one consumer at a time
    /// (single active consumer), so a session's tasks reach one process at a time and the limit holds across the fleet.
    /// Producers set the same (they declare the shard queues). None by default.
    /// </summary>
    public Dictionary<SessionLane, int> SessionLimits { get; set; } = [];

    /// <summary>The lane queues these options declare and consume (session shards included), as producers declare them too.</summary>
    internal LaneQueueTopology LaneQueues => new(Topology, QuorumQueues, DeliveryLimit, SessionShards, SessionLimits);

    /// <summary>Session shards of <paramref name="lane"/> (0: none; always 0 in the priority-queue topology).</summary>
    public int ShardsOf(SessionLane lane) => Topology == LaneTopology.QueuePerLane ? SessionShards.GetValueOrDefault(lane) : 0;

    public int MaxPayloadBytes { get; set; } = TaskParser.DefaultMaxPayloadBytes;

    /// <summary>How long shutdown waits for running tasks before returning the rest to the broker.</summary>
    public int ShutdownTimeoutSeconds { get; set; } = 30;

    /// <summary>
    /// How long a confirmed publish (a result, a retry, a checkpoint) waits for the broker connection to recover before it
    /// fails; the task then stays unacked and the broker delivers it again.
    /// </summary>
    public int RecoveryTimeoutSeconds { get; set; } = 60;

    public GateOptions Gate { get; set; } = new();

    /// <summary>
    /// Fleet-wide de-duplication of copies submitted twice: every consumer follows every other consumer's
    /// <c>command.started</c> and end events, so a copy that lands on another consumer is parked or answered <c>duplicate</c>.
    /// Off by default: it costs the broker two deliveries per task <em>per consumer</em> (docs/fleet-cost.md). Without it a
    /// copy is caught when it lands on the consumer that ran the id, and a redelivery whose result is stored always is.
    /// </summary>
    public bool FleetDeduplication { get; set; }

    /// <summary>
    /// Whether the built-in <c>lanequeue.interrupt</c> task may interrupt sessions (default on). Anyone who may submit tasks
    /// may then ask a session's running tasks to yield or cancel them, also with the producer user of
    /// <c>scripts/broker-users.sh</c>, which may not send fleet commands itself; set false to refuse such tasks
    /// (<c>failed</c>, not retried) and keep interrupts to <c>ILaneQueueProducer.InterruptSessionAsync</c> / the CLI.
    /// </summary>
    public bool InterruptTasks { get; set; } = true;

    /// <summary>How often this consumer publishes its heartbeat (fleet stats drop it after 3 missed beats).</summary>
    public int HeartbeatIntervalMs { get; set; } = 2000;

    /// <summary>Per-lane limits on task starts, on top of the process-wide <c>Queue:RateLimit</c>.</summary>
    public Dictionary<SessionLane, RateLimit> LaneRateLimits { get; set; } = [];

    /// <summary>
    /// Per-lane limits for the whole fleet (a running cap and/or a start rate), kept by the broker in token queues; every
    /// consumer must set the same values. Off for every lane by default.
    /// </summary>
    public Dictionary<SessionLane, FleetLaneLimit> FleetLimits { get; set; } = [];

    public SessionQueueConfig Queue { get; set; } = new();
}

/// <summary>Lane gate settings (queue-per-lane topology).</summary>
public sealed class GateOptions
{
    public bool Enabled { get; set; } = true;

    /// <summary>
    /// How often the fleet monitor asks the broker how many messages are ready in each lane (4 passive declares per check,
    /// once for the whole fleet). Default 25 ms; it was 100 ms before 0.9 (docs/fleet-cost.md has both measured).
    /// </summary>
    public int CheckIntervalMs { get; set; } = 25;

    /// <summary>
    /// Which higher lanes a free slot is held for: <see cref="GateMode.WorkConserving"/> (default: only a lane this process
    /// could start now) or <see cref="GateMode.Strict"/> (any lane with ready work; the rule before 1.0, idles capacity).
    /// </summary>
    public GateMode Mode { get; set; } = GateMode.WorkConserving;

    /// <summary>A lane counts as having work at the broker from this many ready messages.</summary>
    public int PauseAtReady { get; set; } = 1;

    /// <summary>
    /// How long the fleet monitor's last ready counts are trusted: a free slot is held for a higher lane's ready work only
    /// while they are newer than this. The monitor broadcasts every second and on every change between work and none, so
    /// this only matters when it goes quiet (a monitor hand-over). Default 3000 ms.
    /// </summary>
    public int HoldTimeoutMs { get; set; } = 3000;

    /// <summary>
    /// Longest a delivery waits in this process for a slot before it is put back in its lane (published, confirmed, acked:
    /// it never counts as a redelivery). Keep it under the broker's <c>consumer_timeout</c> (30 min by default). Default 15 min.
    /// </summary>
    public int ReturnWaitingAfterSeconds { get; set; } = 900;

    /// <summary>Longest an operator's pause or resume waits for MassTransit to stop or start the lane's endpoint before moving on.</summary>
    public int SwitchTimeoutMs { get; set; } = 30_000;
}

internal sealed class LaneQueueOptionsValidator : IValidateOptions<LaneQueueOptions>
{
    public ValidateOptionsResult Validate(string? name, LaneQueueOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var problems = new List<string>();
        if (!BrokerAddress.TryParse(options.RabbitMqUrl, out _, out var urlError))
            problems.Add($"LaneQueue:RabbitMqUrl must be an amqp:// or amqps:// URL (several hosts separated by commas for a cluster): {urlError}");
        if (options.DeliveryLimit is { } deliveryLimit && (deliveryLimit is < 1 or > 10_000 || !options.QuorumQueues))
            problems.Add($"LaneQueue:DeliveryLimit needs LaneQueue:QuorumQueues=true (classic queues have no delivery limit) and a value between 1 and 10000, got {deliveryLimit}");
        if (options.ShutdownTimeoutSeconds < 0)
            problems.Add($"LaneQueue:ShutdownTimeoutSeconds must not be negative, got {options.ShutdownTimeoutSeconds}");
        if (options.RecoveryTimeoutSeconds is < 0 or > 3600)
            problems.Add($"LaneQueue:RecoveryTimeoutSeconds must be between 0 and 3600, got {options.RecoveryTimeoutSeconds}");
        if (options.Gate.SwitchTimeoutMs is < 100 or > 600_000)
            problems.Add($"LaneQueue:Gate:SwitchTimeoutMs must be between 100 and 600000, got {options.Gate.SwitchTimeoutMs}");
        if (options.HeartbeatIntervalMs is < 100 or > 60_000)
            problems.Add($"LaneQueue:HeartbeatIntervalMs must be between 100 and 60000, got {options.HeartbeatIntervalMs}");
        if (options.Gate.ReturnWaitingAfterSeconds is < 1 or > 86_400)
            problems.Add($"LaneQueue:Gate:ReturnWaitingAfterSeconds must be between 1 and 86400, got {options.Gate.ReturnWaitingAfterSeconds}");
        problems.AddRange(BrokerTopology.HistoryProblems(options.HistoryMaxAge, options.HistoryMaxBytes));
        foreach (var (lane, limit) in options.FleetLimits)
            problems.AddRange(limit.Validate().Select(p => $"LaneQueue:FleetLimits:{lane}:{p}"));
        problems.AddRange(SchedulingProblems(options));
        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
    }

    /// <summary>The settings that shape scheduling in one process, checked by the consumer and by the in-memory test harness alike.</summary>
    internal static IEnumerable<string> SchedulingProblems(LaneQueueOptions options)
    {
        if (string.IsNullOrWhiteSpace(options.ConsumerName))
            yield return "LaneQueue:ConsumerName must not be empty";
        if (options.SlotBudget is < 1 or > 10_000)
            yield return $"LaneQueue:SlotBudget must be between 1 and 10000, got {options.SlotBudget}";
        if (options.PrefetchPerLimit is < 1 or > 100)
            yield return $"LaneQueue:PrefetchPerLimit must be between 1 and 100, got {options.PrefetchPerLimit}";
        if (options.MaxPayloadBytes < 1)
            yield return $"LaneQueue:MaxPayloadBytes must be positive, got {options.MaxPayloadBytes}";
        if (options.HistoryPayloadMaxBytes < 0)
            yield return $"LaneQueue:HistoryPayloadMaxBytes must be 0 or more, got {options.HistoryPayloadMaxBytes}";
        if (options.Gate.CheckIntervalMs is < 10 or > 60_000)
            yield return $"LaneQueue:Gate:CheckIntervalMs must be between 10 and 60000, got {options.Gate.CheckIntervalMs}";
        if (options.Gate.PauseAtReady < 1)
            yield return $"LaneQueue:Gate:PauseAtReady must be at least 1, got {options.Gate.PauseAtReady}";
        if (options.Gate.HoldTimeoutMs is < 1 or > 60_000)
            yield return $"LaneQueue:Gate:HoldTimeoutMs must be between 1 and 60000, got {options.Gate.HoldTimeoutMs}";
        foreach (var (lane, shards) in options.SessionShards)
        {
            if (shards is < 0 or > Contracts.SessionShards.Max)
                yield return $"LaneQueue:SessionShards:{lane} must be between 0 and {Contracts.SessionShards.Max}, got {shards}";
        }
        foreach (var (lane, limit) in options.SessionLimits)
        {
            if (limit is < 0 or > 10_000)
                yield return $"LaneQueue:SessionLimits:{lane} must be between 0 and 10000, got {limit}";
        }
        foreach (var (lane, reserved) in options.ReservedSlots)
        {
            if (reserved < 0)
                yield return $"LaneQueue:ReservedSlots:{lane} must not be negative, got {reserved}";
        }
        if (options.ReservedSlots.Values.Sum() > options.SlotBudget)
            yield return $"LaneQueue:ReservedSlots add up to {options.ReservedSlots.Values.Sum()}, more than LaneQueue:SlotBudget ({options.SlotBudget})";
        foreach (var problem in options.Queue.Validate())
            yield return "LaneQueue:Queue:" + problem;
        foreach (var (lane, limit) in options.LaneRateLimits)
        {
            foreach (var problem in limit.Validate())
                yield return $"LaneQueue:LaneRateLimits:{lane}:{problem}";
        }
    }
}
