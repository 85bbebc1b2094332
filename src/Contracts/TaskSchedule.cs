using System.Text.Json;
using System.Text.Json.Serialization;

namespace LaneQueue.Contracts;

/// <summary>
/// A recurring schedule: a task of <see cref="Lane"/> with <see cref="CommandType"/> and <see cref="Payload"/> (used as is
/// for each firing), fired by the fleet monitor at every due time of <see cref="Cron"/> (in <see cref="TimeZone"/>) or every
/// <see cref="IntervalMs"/>. Each firing is a normal task with the id <c>&lt;id&gt;:&lt;due time, UTC&gt;</c>. Kept as lasting
/// fleet state (<c>schedule_put</c> commands on <see cref="BrokerNames.FleetState"/>). See docs/wire-contract.md §11.
/// </summary>
public sealed record TaskSchedule
{
    /// <summary>Catch-up after downtime or a pause: fire no missed due time older than the grace period (the default).</summary>
    public const string CatchUpSkip = "skip";

    /// <summary>Catch-up after downtime or a pause: fire once, for the latest missed due time older than the grace period.</summary>
    public const string CatchUpOnce = "once";

    [JsonPropertyName("id")]
    public required string Id { get; init; }

    /// <summary>A cron expression: 6 fields with seconds (<c>*/10 * * * * *</c>) or the standard 5 (<c>0 2 * * *</c>). Or <see cref="IntervalMs"/>.</summary>
    [JsonPropertyName("cron")]
    public string? Cron { get; init; }

    /// <summary>IANA time zone of <see cref="Cron"/> (e.g. <c>Europe/Berlin</c>); null: UTC.</summary>
    [JsonPropertyName("time_zone")]
    public string? TimeZone { get; init; }

    /// <summary>A fixed interval (at least 1000 ms): due times are the multiples of it since the Unix epoch. Or <see cref="Cron"/>.</summary>
    [JsonPropertyName("interval_ms")]
    public long? IntervalMs { get; init; }

    [JsonPropertyName("lane")]
    [JsonConverter(typeof(SessionLaneJsonConverter))]
    public required SessionLane Lane { get; init; }

    [JsonPropertyName("command_type")]
    public string? CommandType { get; init; }

    [JsonPropertyName("payload")]
    public JsonElement Payload { get; init; } = TaskJson.EmptyObject;

    [JsonPropertyName("session_id")]
    public string? SessionId { get; init; }

    /// <summary><see cref="CatchUpSkip"/> (also when null) or <see cref="CatchUpOnce"/>.</summary>
    [JsonPropertyName("catch_up")]
    public string? CatchUp { get; init; }
}

/// <summary>
/// Appended by the fleet monitor to <see cref="BrokerNames.SchedulesFired"/> after a firing's task was confirmed by the broker:
/// the last firing per schedule, for the next monitor and for listing.
/// </summary>
public sealed record ScheduleFiring
{
    [JsonPropertyName("schedule_id")]
    public required string ScheduleId { get; init; }

    [JsonPropertyName("due")]
    public required DateTimeOffset Due { get; init; }

    [JsonPropertyName("task_id")]
    public required string TaskId { get; init; }

    [JsonPropertyName("consumer")]
    public string? Consumer { get; init; }

    [JsonPropertyName("at")]
    public DateTimeOffset At { get; init; } = DateTimeOffset.UtcNow;
}
