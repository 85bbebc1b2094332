using System.Text.Json.Serialization;

namespace LaneQueue.Contracts;

/// <summary>
/// What a consumer reports about itself every few seconds on the fanout exchange <see cref="BrokerNames.HeartbeatsExchange"/>.
/// Fleet stats are these heartbeats plus the broker's queue depths: no database.
/// </summary>
public sealed record ConsumerHeartbeat
{
    [JsonPropertyName("consumer")]
    public required string Consumer { get; init; }

    [JsonPropertyName("host")]
    public string Host { get; init; } = Environment.MachineName;

    [JsonPropertyName("pid")]
    public int Pid { get; init; } = Environment.ProcessId;

    [JsonPropertyName("topology")]
    public string Topology { get; init; } = "";

    /// <summary>The LaneQueue.Consumer package version the consumer runs (a rolling upgrade shows two).</summary>
    [JsonPropertyName("version")]
    public string Version { get; init; } = "";

    [JsonPropertyName("started_at")]
    public DateTimeOffset StartedAt { get; init; }

    [JsonPropertyName("at")]
    public DateTimeOffset At { get; init; } = DateTimeOffset.UtcNow;

    /// <summary>The next heartbeat is due within this many milliseconds; a consumer silent for 3 intervals is gone.</summary>
    [JsonPropertyName("interval_ms")]
    public int IntervalMs { get; init; }

    [JsonPropertyName("slot_budget")]
    public int SlotBudget { get; init; }

    [JsonPropertyName("slots_in_use")]
    public int SlotsInUse { get; init; }

    [JsonPropertyName("external_pending")]
    public int ExternalPending { get; init; }

    /// <summary>The External-lane tasks this consumer waits for (<see cref="ExternalPending"/> of them).</summary>
    [JsonPropertyName("external_tasks")]
    public IReadOnlyList<PendingExternalTask> ExternalTasks { get; init; } = [];

    [JsonPropertyName("lanes")]
    public IReadOnlyList<LaneHeartbeat> Lanes { get; init; } = [];
}

public sealed record LaneHeartbeat
{
    [JsonPropertyName("lane")]
    [JsonConverter(typeof(SessionLaneJsonConverter))]
    public SessionLane Lane { get; init; }

    [JsonPropertyName("active")]
    public int Active { get; init; }

    [JsonPropertyName("max_concurrency")]
    public int MaxConcurrency { get; init; }

    /// <summary>
    /// Tasks of the lane this consumer holds waiting for a slot: delivered (unacked at the broker, not ready), not started.
    /// With the lanes' prefetch a backlog sits here as much as at the broker.
    /// </summary>
    [JsonPropertyName("waiting")]
    public int Waiting { get; init; }

    [JsonPropertyName("handler_mode")]
    public string HandlerMode { get; init; } = "internal";

    [JsonPropertyName("paused")]
    public bool Paused { get; init; }

    /// <summary>Why: the lane gate's reason (e.g. "lane query has 12 ready") or "paused by operator".</summary>
    [JsonPropertyName("paused_reason")]
    public string? PausedReason { get; init; }

    [JsonPropertyName("completed")]
    public long Completed { get; init; }

    [JsonPropertyName("failed")]
    public long Failed { get; init; }

    [JsonPropertyName("dead_lettered")]
    public long DeadLettered { get; init; }

    [JsonPropertyName("retried")]
    public long Retried { get; init; }

    [JsonPropertyName("cancelled")]
    public long Cancelled { get; init; }

    /// <summary>
    /// The busiest sessions of the lane in this consumer (at most <see cref="MaxSessions"/>, by running + waiting): tasks of
    /// each running here and waiting here for a slot (delivered, not yet started; a backlog still at the broker is not counted).
    /// </summary>
    [JsonPropertyName("sessions")]
    public IReadOnlyList<SessionHeartbeat> Sessions { get; init; } = [];

    /// <summary>Tasks of one session that may run at once in the lane (<c>SessionLimits:&lt;Lane&gt;</c>; 1: sequential); null: no limit.</summary>
    [JsonPropertyName("session_limit")]
    public int? SessionLimit { get; init; }

    /// <summary>The lane's session shards this consumer takes (<c>SessionShards:&lt;Lane&gt;</c>); 0: none.</summary>
    [JsonPropertyName("session_shards")]
    public int SessionShards { get; init; }

    /// <summary>Sessions a lane's heartbeat lists at most.</summary>
    public const int MaxSessions = 10;
}

/// <summary>One session of a lane in a consumer: its tasks running there and waiting there for a slot.</summary>
public sealed record SessionHeartbeat
{
    /// <summary>The tasks' <c>session_id</c>; null for tasks without one (they count as one session).</summary>
    [JsonPropertyName("session")]
    public string? Session { get; init; }

    [JsonPropertyName("running")]
    public int Running { get; init; }

    [JsonPropertyName("waiting")]
    public int Waiting { get; init; }
}
