using System.Text.Json;
using System.Text.Json.Serialization;

namespace LaneQueue.Contracts;

/// <summary>The outcome of a task, published to the results exchange with the task id as routing key.</summary>
public sealed record ExternalTaskResult
{
    [JsonPropertyName("task_id")]
    public required string TaskId { get; init; }

    [JsonPropertyName("lane")]
    [JsonConverter(typeof(SessionLaneJsonConverter))]
    public SessionLane Lane { get; init; }

    [JsonPropertyName("success")]
    public bool Success { get; init; }

    /// <summary><c>completed</c>, <c>failed</c>, <c>timed_out</c>, <c>cancelled</c> or <c>duplicate</c>; failed and timed-out tasks wait in the dead-letter queue.</summary>
    [JsonPropertyName("status")]
    public string Status { get; init; } = TaskStatuses.Completed;

    [JsonPropertyName("result")]
    public JsonElement Result { get; init; } = TaskJson.EmptyObject;

    [JsonPropertyName("error")]
    public string? Error { get; init; }

    [JsonPropertyName("session_id")]
    public string? SessionId { get; init; }

    [JsonPropertyName("consumer")]
    public string? Consumer { get; init; }

    [JsonPropertyName("started_at")]
    public DateTimeOffset StartedAt { get; init; }

    [JsonPropertyName("finished_at")]
    public DateTimeOffset FinishedAt { get; init; }

    /// <summary>Retries before the run that produced this result.</summary>
    [JsonPropertyName("attempts")]
    public int Attempts { get; init; }
}

public static class TaskStatuses
{
    public const string Completed = "completed";
    public const string Failed = "failed";
    public const string TimedOut = "timed_out";
    public const string Cancelled = "cancelled";
    public const string DeadLettered = "dead_lettered";

    /// <summary>The id already ran (or is running) elsewhere; this copy was not run.</summary>
    public const string Duplicate = "duplicate";
}
