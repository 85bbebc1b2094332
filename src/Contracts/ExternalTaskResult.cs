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

    /// <summary>
    /// <c>completed</c>, <c>failed</c>, <c>timed_out</c>, <c>cancelled</c> or <c>duplicate</c> (see <see cref="TaskStatuses"/>);
    /// failed and timed-out messages wait in the dead-letter queue.
    /// </summary>
    [JsonPropertyName("status")]
    public string Status { get; init; } = TaskStatuses.Completed;

    [JsonPropertyName("result")]
    public JsonElement Result { get; init; } = TaskJson.EmptyObject;

    /// <summary>
    /// Why it did not complete; null when it did. <c>field: problem</c> for a message that breaks the contract and for a
    /// failure that can never succeed (e.g. <c>command_type: 'x' has no handler ...</c>); the handler's own message when it
    /// threw; <c>timed out after N ms</c> for a timeout.
    /// </summary>
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

    /// <summary>Which attempt this result ends, counting from 1: the first run is 1, its first retry 2 (retries before it + 1).</summary>
    [JsonPropertyName("attempts")]
    public int Attempts { get; init; }
}

/// <summary>Every <see cref="ExternalTaskResult.Status"/> a consumer produces.</summary>
public static class TaskStatuses
{
    public const string Completed = "completed";
    public const string Failed = "failed";
    public const string TimedOut = "timed_out";
    public const string Cancelled = "cancelled";

    /// <summary>The id already ran (or is running) elsewhere; this copy was not run.</summary>
    public const string Duplicate = "duplicate";

    /// <summary>Every status, as docs/wire-contract.md lists them.</summary>
    public static IReadOnlyList<string> All { get; } = [Completed, Failed, TimedOut, Cancelled, Duplicate];
}
