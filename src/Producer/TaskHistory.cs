using System.Text.Json;
using System.Text.Json.Serialization;
using LaneQueue.Contracts;
using RabbitMQ.Client;

namespace LaneQueue.Producer;

/// <summary>What the history stream holds about one task: its lifecycle events in order and its results (last = final).</summary>
public sealed record TaskHistory
{
    [JsonPropertyName("task_id")]
    public required string TaskId { get; init; }

    [JsonPropertyName("events")]
    public IReadOnlyList<TaskEvent> Events { get; init; } = [];

    /// <summary>Every result published for the task (normally one; a duplicate copy adds a <c>duplicate</c> one).</summary>
    [JsonPropertyName("results")]
    public IReadOnlyList<ExternalTaskResult> Results { get; init; } = [];

    /// <summary>The result that ended the task: the last one that is not <c>duplicate</c>, else the last one; null while none.</summary>
    [JsonIgnore]
    public ExternalTaskResult? Final =>
        Results.LastOrDefault(r => r.Status != TaskStatuses.Duplicate) ?? Results.LastOrDefault();

    /// <summary>
    /// The payload that ran, from the first <c>command.started</c> event that carries it; null before the task started or
    /// when it was larger than the consumer's <c>LaneQueue:HistoryPayloadMaxBytes</c> (see <see cref="PayloadBytes"/>).
    /// </summary>
    [JsonIgnore]
    public JsonElement? Payload => Events.FirstOrDefault(e => e.Payload is not null)?.Payload;

    /// <summary>The payload's size as the first <c>command.started</c> event noted it, kept or not; null before a start.</summary>
    [JsonIgnore]
    public long? PayloadBytes => Events.FirstOrDefault(e => e.PayloadBytes is not null)?.PayloadBytes;
}

/// <summary>Finds tasks in <see cref="BrokerNames.History"/>, read from a point in time to its end (<see cref="HistoryStream"/>).</summary>
internal static class TaskHistoryReader
{
    /// <param name="lookBack">How far back to read; null: the whole stream (its retention, <c>LaneQueue:HistoryMaxAge</c>).</param>
    public static async Task<TaskHistory> ReadAsync(IConnection connection, string taskId, TimeSpan? lookBack, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(taskId);
        DateTimeOffset? from = lookBack is { } back && back < TimeSpan.FromDays(365 * 100) ? DateTimeOffset.UtcNow - back : null;
        var found = await ReadAsync(connection, new HashSet<string>(StringComparer.Ordinal) { taskId }, from, TimeSpan.FromSeconds(60), cancellationToken);
        return found.TryGetValue(taskId, out var history) ? history : new TaskHistory { TaskId = taskId };
    }

    /// <summary>
    /// The history of several tasks in one read from <paramref name="from"/> (second granularity; null: the stream's first
    /// message) to the stream's end; tasks with nothing in that span are left out. Throws <see cref="TimeoutException"/> when the end is not reached in
    /// <paramref name="timeout"/>.
    /// </summary>
    public static async Task<Dictionary<string, TaskHistory>> ReadAsync(IConnection connection, IReadOnlySet<string> taskIds, DateTimeOffset? from,
        TimeSpan timeout, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(taskIds);
        var events = new Dictionary<string, List<TaskEvent>>(StringComparer.Ordinal);
        var results = new Dictionary<string, List<ExternalTaskResult>>(StringComparer.Ordinal);
        object offset = from is { } start ? new AmqpTimestamp(Math.Max(0, start.ToUnixTimeSeconds())) : "first";
        await HistoryStream.ReadToEndAsync(connection, offset,
            (body, properties) => HistoryStream.ForEachRecord(body, properties, record => Collect(record, taskIds, events, results)), timeout, cancellationToken);
        return taskIds.Where(id => events.ContainsKey(id) || results.ContainsKey(id)).ToDictionary(id => id, id => new TaskHistory
        {
            TaskId = id,
            Events = WithCompletedEvents(events.TryGetValue(id, out var e) ? e : [], results.TryGetValue(id, out var r) ? r : []),
            Results = r ?? [],
        }, StringComparer.Ordinal);
    }

    static void Collect(JsonElement root, IReadOnlySet<string> taskIds, Dictionary<string, List<TaskEvent>> events,
        Dictionary<string, List<ExternalTaskResult>> results)
    {
        try
        {
            if (!root.TryGetProperty("task_id", out var id) || id.ValueKind != JsonValueKind.String || id.GetString() is not { } taskId
                || !taskIds.Contains(taskId))
                return;
            if (root.TryGetProperty("event", out _))
                Add(events, taskId, root.Deserialize<TaskEvent>(TaskJson.Options)!);
            else if (root.TryGetProperty("status", out _))
                Add(results, taskId, root.Deserialize<ExternalTaskResult>(TaskJson.Options)!);
        }
        catch (JsonException)
        {
            // not one of ours
        }
    }

    /// <summary>
    /// The events with a <c>command.completed</c> for every <c>completed</c> result that has none (consumers do not store
    /// that event: its result stands for it), placed by time: before the first event later than the result's
    /// <c>finished_at</c> that is not a progress report of the same attempt. An event stored by an older consumer is kept as it is.
    /// </summary>
    internal static List<TaskEvent> WithCompletedEvents(List<TaskEvent> events, IReadOnlyList<ExternalTaskResult> results)
    {
        foreach (var result in results)
        {
            if (result.Status != TaskStatuses.Completed
                || events.Any(e => e.Event == TaskEvent.Completed && e.Attempt == result.Attempts && e.Consumer == result.Consumer))
                continue;
            var completed = new TaskEvent
            {
                Event = TaskEvent.Completed,
                TaskId = result.TaskId,
                Lane = result.Lane,
                SessionId = result.SessionId,
                Consumer = result.Consumer,
                Attempt = result.Attempts,
                At = result.FinishedAt,
            };
            // The run's last progress report may be stamped a moment after finished_at: it still comes before the end.
            var at = events.FindIndex(e => e.At > result.FinishedAt && !(e.Event == TaskEvent.Progress && e.Attempt == result.Attempts));
            events.Insert(at < 0 ? events.Count : at, completed);
        }
        return events;
    }

    static void Add<T>(Dictionary<string, List<T>> byId, string id, T item)
    {
        if (!byId.TryGetValue(id, out var list))
            byId[id] = list = [];
        list.Add(item);
    }
}
