using System.Text.Json.Serialization;

namespace LaneQueue.Contracts;

/// <summary>
/// A task of an External lane that holds its slot on a consumer and waits for an external worker (the reference's
/// <c>pending_external_tasks()</c>): announced at <see cref="AnnouncedAt"/>, ends with a timeout at <see cref="Deadline"/>
/// unless completed first. Consumers report theirs in their <see cref="ConsumerHeartbeat"/>.
/// </summary>
public sealed record PendingExternalTask
{
    [JsonPropertyName("task_id")]
    public required string TaskId { get; init; }

    [JsonPropertyName("lane")]
    [JsonConverter(typeof(SessionLaneJsonConverter))]
    public SessionLane Lane { get; init; }

    /// <summary>The consumer that holds the slot and waits for the completion.</summary>
    [JsonPropertyName("consumer")]
    public string Consumer { get; init; } = "";

    /// <summary>The attempt that waits, counting from 1.</summary>
    [JsonPropertyName("attempt")]
    public int Attempt { get; init; } = 1;

    [JsonPropertyName("announced_at")]
    public DateTimeOffset AnnouncedAt { get; init; }

    [JsonPropertyName("deadline")]
    public DateTimeOffset Deadline { get; init; }
}
