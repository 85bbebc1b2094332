using System.Text.Json;
using System.Text.Json.Serialization;

namespace LaneQueue.Contracts;

/// <summary>
/// A task submitted to a lane. On the wire it is plain JSON with snake_case keys; <c>id</c>, <c>lane</c> and
/// <c>payload</c> are required (see <c>external-task.schema.json</c>).
/// </summary>
public sealed record ExternalTask
{
    [JsonPropertyName("id")]
    public required string Id { get; init; }

    [JsonPropertyName("lane")]
    [JsonConverter(typeof(SessionLaneJsonConverter))]
    public required SessionLane Lane { get; init; }

    /// <summary>Arbitrary JSON handed to the handler; <c>{}</c> when there is none.</summary>
    [JsonPropertyName("payload")]
    public JsonElement Payload { get; init; } = TaskJson.EmptyObject;

    /// <summary>Selects the handler; tasks without one run the lane's default handler.</summary>
    [JsonPropertyName("command_type")]
    public string? CommandType { get; init; }

    [JsonPropertyName("session_id")]
    public string? SessionId { get; init; }

    /// <summary>Time one run of the task may take; null means the lane's configured timeout applies.</summary>
    [JsonPropertyName("timeout_ms")]
    public long? TimeoutMs { get; init; }

    [JsonPropertyName("created_at")]
    public DateTimeOffset CreatedAt { get; init; } = DateTimeOffset.UtcNow;

    /// <summary>The handler may be asked to yield to higher-lane work (cooperative preemption).</summary>
    [JsonPropertyName("preemptible")]
    public bool Preemptible { get; init; }

    /// <summary>Where a preempted task resumes: what its handler returned when it yielded; null on a fresh task.</summary>
    [JsonPropertyName("checkpoint")]
    public JsonElement? Checkpoint { get; init; }

    /// <summary>
    /// Delayed task: start no earlier than this many milliseconds after the submit (0 to <see cref="TaskParser.MaxDelayMs"/>).
    /// It waits at the broker (TTL hop queues, <c>lanequeue.delay.*</c>), holding no consumer slot, then joins its lane.
    /// At most one of <see cref="DelayMs"/> and <see cref="NotBefore"/>.
    /// </summary>
    [JsonPropertyName("delay_ms")]
    public long? DelayMs { get; init; }

    /// <summary>Delayed task: start no earlier than this time (at most <see cref="TaskParser.MaxDelayMs"/> ahead when submitted).</summary>
    [JsonPropertyName("not_before")]
    public DateTimeOffset? NotBefore { get; init; }

    /// <summary>
    /// De-duplication key: of the tasks with this key, the first to come due runs and any other inside
    /// <see cref="DedupWindowMs"/> from then is answered <c>duplicate</c> (naming the first one), across the fleet. Independent
    /// of the task id. At most 200 characters.
    /// </summary>
    [JsonPropertyName("dedup_key")]
    public string? DedupKey { get; init; }

    /// <summary>How long a <see cref="DedupKey"/> holds (1 ms to 24 h); null: <see cref="TaskParser.DefaultDedupWindowMs"/> (60 s).</summary>
    [JsonPropertyName("dedup_window_ms")]
    public long? DedupWindowMs { get; init; }

    /// <summary>
    /// How <see cref="DedupKey"/> picks the task that runs: <see cref="TaskParser.DedupOnce"/> (null means it: the first runs) or
    /// <see cref="TaskParser.DedupDebounce"/> (the last runs: a task that comes due after a later task with the key was seen is
    /// answered <c>duplicate</c> naming that one; <see cref="DedupWindowMs"/> is then how long the key remembers its latest task
    /// and must cover the delay). Only with a key.
    /// </summary>
    [JsonPropertyName("dedup_mode")]
    public string? DedupMode { get; init; }

    /// <summary>How long the <see cref="DedupKey"/> holds: <see cref="DedupWindowMs"/>, or the 60 s default when it is absent.</summary>
    [JsonIgnore]
    public long DedupWindowOrDefaultMs => DedupWindowMs ?? TaskParser.DefaultDedupWindowMs;

    /// <summary>True for <see cref="DedupMode"/> <c>debounce</c>.</summary>
    [JsonIgnore]
    public bool Debounced => DedupKey is not null && DedupMode == TaskParser.DedupDebounce;

    /// <summary>
    /// This task, de-duplicated by <paramref name="key"/> for <paramref name="window"/> in the default mode, the first runs
    /// (wire fields <c>dedup_key</c>, <c>dedup_window_ms</c>).
    /// </summary>
    public ExternalTask DedupedBy(string key, TimeSpan? window = null) =>
        this with { DedupKey = key, DedupWindowMs = window is { } w ? (long)Math.Ceiling(w.TotalMilliseconds) : null, DedupMode = null };

    /// <summary>
    /// This task, debounced by <paramref name="key"/> (wire fields <c>dedup_key</c>, <c>dedup_mode: "debounce"</c>,
    /// <c>dedup_window_ms</c>): of the tasks with the key, the last one seen runs; give it a delay (<see cref="After"/>) to
    /// run "that long after the last submit". <paramref name="window"/> (default 60 s) must cover the delay.
    /// </summary>
    public ExternalTask DebouncedBy(string key, TimeSpan? window = null) => DedupedBy(key, window) with { DedupMode = TaskParser.DedupDebounce };

    /// <summary>This task, to start no earlier than <paramref name="delay"/> after its submit (wire field <c>delay_ms</c>).</summary>
    public ExternalTask After(TimeSpan delay) => this with { DelayMs = (long)Math.Ceiling(delay.TotalMilliseconds), NotBefore = null };

    /// <summary>This task, to start no earlier than <paramref name="time"/> (wire field <c>not_before</c>).</summary>
    public ExternalTask At(DateTimeOffset time) => this with { NotBefore = time, DelayMs = null };

    public static ExternalTask Create(string id, SessionLane lane, object? payload = null, string? commandType = null) => new()
    {
        Id = id,
        Lane = lane,
        Payload = payload switch
        {
            null => TaskJson.EmptyObject,
            JsonElement element => element,
            string json => TaskJson.ParseElement(json),
            _ => JsonSerializer.SerializeToElement(payload, TaskJson.Options),
        },
        CommandType = commandType,
    };

    /// <summary>
    /// Whether a run that started at <paramref name="runStartedAt"/> is past <see cref="TimeoutMs"/> (how long one run may
    /// take, as the consumer enforces it: from the run's start, not from <see cref="CreatedAt"/>). False without a timeout.
    /// </summary>
    public bool IsTimedOut(DateTimeOffset runStartedAt, DateTimeOffset now) => RemainingMs(runStartedAt, now) is <= 0;

    /// <summary>Milliseconds a run that started at <paramref name="runStartedAt"/> has left, or null without a timeout.</summary>
    public long? RemainingMs(DateTimeOffset runStartedAt, DateTimeOffset now) =>
        TimeoutMs is { } timeout ? timeout - (long)(now - runStartedAt).TotalMilliseconds : null;
}
