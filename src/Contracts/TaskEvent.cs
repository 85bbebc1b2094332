using System.Text.Json.Serialization;

namespace LaneQueue.Contracts;

/// <summary>
/// A task's lifecycle transition, published to <see cref="BrokerNames.EventsExchange"/> with routing key
/// <c>&lt;event&gt;.&lt;lane&gt;</c> (e.g. <c>command.started.query</c>); bind <c>command.#</c> to see them all.
/// </summary>
public sealed record TaskEvent
{
    public const string Submitted = "command.submitted";
    public const string Started = "command.started";
    public const string Completed = "command.completed";
    public const string Failed = "command.failed";
    public const string Timeout = "command.timeout";
    public const string Retry = "command.retry";
    public const string DeadLettered = "command.dead_lettered";
    public const string Cancelled = "command.cancelled";
    public const string Preempted = "command.preempted";
    public const string Duplicate = "command.duplicate";
    public const string ExternalPending = "command.external_pending";
    public const string Progress = "command.progress";

    /// <summary>The largest <see cref="Progress"/> value a handler may report: its JSON, UTF-8, in bytes.</summary>
    public const int ProgressMaxBytes = 4096;

    [JsonPropertyName("event")]
    public required string Event { get; init; }

    [JsonPropertyName("task_id")]
    public required string TaskId { get; init; }

    [JsonPropertyName("lane")]
    [JsonConverter(typeof(SessionLaneJsonConverter))]
    public SessionLane Lane { get; init; }

    [JsonPropertyName("session_id")]
    public string? SessionId { get; init; }

    [JsonPropertyName("consumer")]
    public string? Consumer { get; init; }

    /// <summary>
    /// The attempt the event is about, counting from 1 like <see cref="ExternalTaskResult.Attempts"/>; for <see cref="Retry"/>
    /// the attempt that comes next.
    /// </summary>
    [JsonPropertyName("attempt")]
    public int Attempt { get; init; }

    [JsonPropertyName("at")]
    public DateTimeOffset At { get; init; } = DateTimeOffset.UtcNow;

    [JsonPropertyName("error")]
    public string? Error { get; init; }

    /// <summary>For <see cref="Retry"/>: how long the task waits before it is back in its lane.</summary>
    [JsonPropertyName("delay_ms")]
    public long? DelayMs { get; init; }

    /// <summary>
    /// For <see cref="Started"/>: the task's payload, so the history keeps what ran (null when it is larger than the consumer's
    /// <c>LaneQueue:HistoryPayloadMaxBytes</c>, or that is 0).
    /// </summary>
    [JsonPropertyName("payload")]
    public System.Text.Json.JsonElement? Payload { get; init; }

    /// <summary>For <see cref="Started"/>: the size of the payload's JSON in bytes (UTF-8), kept or not.</summary>
    [JsonPropertyName("payload_bytes")]
    public long? PayloadBytes { get; init; }

    /// <summary>
    /// For <see cref="Progress"/>: what the running handler reported (any JSON value of at most <see cref="ProgressMaxBytes"/>;
    /// <c>{"percent": 40, "message": "..."}</c> from <c>TaskContext.ReportProgressAsync(percent, message)</c>).
    /// </summary>
    [JsonPropertyName("progress")]
    public System.Text.Json.JsonElement? ProgressValue { get; init; }
}

/// <summary>A lane's depth event (<c>lane.pressure</c> / <c>lane.idle</c>) on <see cref="BrokerNames.EventsExchange"/>, routing key <c>&lt;event&gt;.&lt;lane&gt;</c>.</summary>
public sealed record LaneEvent
{
    public const string Pressure = "lane.pressure";
    public const string Idle = "lane.idle";

    [JsonPropertyName("event")]
    public required string Event { get; init; }

    [JsonPropertyName("lane")]
    [JsonConverter(typeof(SessionLaneJsonConverter))]
    public SessionLane Lane { get; init; }

    [JsonPropertyName("depth")]
    public long Depth { get; init; }

    [JsonPropertyName("threshold")]
    public int Threshold { get; init; }

    [JsonPropertyName("consumer")]
    public string? Consumer { get; init; }

    [JsonPropertyName("at")]
    public DateTimeOffset At { get; init; } = DateTimeOffset.UtcNow;
}

/// <summary>
/// A command to the whole fleet, published to <see cref="BrokerNames.FleetExchange"/> and kept in the stream
/// <see cref="BrokerNames.FleetLog"/>, so consumers that start later apply it too.
/// </summary>
public sealed record FleetCommand
{
    public const string Cancel = "cancel";
    public const string SetHandler = "set_handler";
    public const string Pause = "pause";
    public const string Resume = "resume";
    public const string Drain = "drain";
    public const string Interrupt = "interrupt";

    /// <summary>Adds or replaces a recurring schedule (<see cref="Schedule"/>); lasting state, the newest command per schedule id wins.</summary>
    public const string SchedulePut = "schedule_put";

    /// <summary>Removes the schedule <see cref="ScheduleId"/>.</summary>
    public const string ScheduleRemove = "schedule_remove";

    /// <summary>Pauses the schedule <see cref="ScheduleId"/>: no firings until <see cref="ScheduleResume"/>.</summary>
    public const string SchedulePause = "schedule_pause";

    /// <summary>Resumes the schedule <see cref="ScheduleId"/>; missed due times per its catch-up policy.</summary>
    public const string ScheduleResume = "schedule_resume";

    /// <summary>For <see cref="Interrupt"/>: ask the session's preemptible running tasks to yield (the default).</summary>
    public const string InterruptYield = "yield";

    /// <summary>For <see cref="Interrupt"/>: cancel the session's running tasks, preemptible or not.</summary>
    public const string InterruptCancel = "cancel";

    [JsonPropertyName("command")]
    public required string Command { get; init; }

    /// <summary>For <see cref="Cancel"/>: the task to cancel.</summary>
    [JsonPropertyName("task_id")]
    public string? TaskId { get; init; }

    /// <summary>
    /// For <see cref="Cancel"/>: cancel every task of this session created before <see cref="At"/>. For <see cref="Interrupt"/>:
    /// the session whose tasks running at <see cref="At"/> are asked to yield or are cancelled (tasks that start later are not).
    /// </summary>
    [JsonPropertyName("session_id")]
    public string? SessionId { get; init; }

    /// <summary>For <see cref="Drain"/>: the consumer to drain (its ConsumerName).</summary>
    [JsonPropertyName("consumer")]
    public string? Consumer { get; init; }

    /// <summary>For <see cref="SetHandler"/>, <see cref="Pause"/> and <see cref="Resume"/>: the lane.</summary>
    [JsonPropertyName("lane")]
    public string? Lane { get; init; }

    /// <summary>
    /// For <see cref="SetHandler"/>: <c>internal</c>, <c>external</c> or <c>hybrid</c>. For <see cref="Interrupt"/>:
    /// <see cref="InterruptYield"/> (also when absent) or <see cref="InterruptCancel"/>.
    /// </summary>
    [JsonPropertyName("mode")]
    public string? Mode { get; init; }

    /// <summary>For <see cref="SetHandler"/>: how long an external worker may take.</summary>
    [JsonPropertyName("timeout_ms")]
    public long? TimeoutMs { get; init; }

    /// <summary>For the schedule commands: the schedule's id.</summary>
    [JsonPropertyName("schedule_id")]
    public string? ScheduleId { get; init; }

    /// <summary>For <see cref="SchedulePut"/>: the schedule.</summary>
    [JsonPropertyName("schedule")]
    public TaskSchedule? Schedule { get; init; }

    [JsonPropertyName("at")]
    public DateTimeOffset At { get; init; } = DateTimeOffset.UtcNow;
}

/// <summary>Published by an external worker to <see cref="BrokerNames.ExternalCompletionsExchange"/> with the task id as routing key.</summary>
public sealed record ExternalCompletion
{
    [JsonPropertyName("task_id")]
    public required string TaskId { get; init; }

    [JsonPropertyName("success")]
    public bool Success { get; init; }

    [JsonPropertyName("result")]
    public System.Text.Json.JsonElement Result { get; init; } = TaskJson.EmptyObject;

    [JsonPropertyName("error")]
    public string? Error { get; init; }
}
