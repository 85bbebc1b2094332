using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using LaneQueue.Contracts;
using LaneQueue.Producer;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace LaneQueue.Dashboard;

/// <summary>One delayed task waiting in the delay tree.</summary>
internal sealed record DelayedTaskView(
    [property: JsonPropertyName("task_id")] string TaskId,
    [property: JsonPropertyName("lane")] string? Lane,
    [property: JsonPropertyName("session_id")] string? SessionId,
    [property: JsonPropertyName("due")] DateTimeOffset Due,
    [property: JsonPropertyName("level")] int Level);

/// <summary>
/// What the Scheduled page shows of the delay tree: <see cref="Total"/> tasks waiting (the hop queues' depths at the moment
/// of the read) and the soonest due among those peeked. <see cref="Complete"/>: every
/// message of every hop queue was peeked, so the list is the exact soonest; otherwise the soonest among the first
/// <see cref="LaneQueueDashboardOptions.DelayedTasksShown"/> of each hop queue.
/// </summary>
internal sealed record DelayedTasksSnapshot(
    [property: JsonPropertyName("at")] DateTimeOffset At,
    [property: JsonPropertyName("total")] long Total,
    [property: JsonPropertyName("peeked")] int Peeked,
    [property: JsonPropertyName("complete")] bool Complete,
    [property: JsonPropertyName("tasks")] IReadOnlyList<DelayedTaskView> Tasks,
    [property: JsonPropertyName("read_ms")] double ReadMs,
    [property: JsonPropertyName("error")] string? Error = null);

/// <summary>
/// Reads the delayed tasks from the delay tree (<c>lanequeue.delay.00</c> … <c>20</c>) through the management API, only when
/// asked (the Scheduled page polls while it is open) and at most once per <see cref="LaneQueueDashboardOptions.DelayedReadInterval"/>
/// for all viewers together: of each of the 21 hop queues, its first <see cref="LaneQueueDashboardOptions.DelayedTasksShown"/>
/// messages taken and put back at once (<c>ack_requeue_true</c>), with the queue's depth.
/// A requeued message keeps its original expiry and its place (RabbitMQ's TTL guide; tried on 3.10.8 with a control), so a
/// peek does not delay a task: one whose expiry passes during the few ms it is held leaves its hop queue when put back.
/// </summary>
internal sealed partial class DelayedTasks(IOptions<LaneQueueDashboardOptions> options, IOptions<ProducerOptions> broker, ILogger<DelayedTasks> logger)
{
    /// <summary>Bodies are read up to this many bytes; a longer one shows its id (<c>message_id</c>) and lane (routing key) only.</summary>
    const int BodyBytesRead = 16 * 1024;

    readonly QueueHeads? _management = QueueHeads.For(options.Value, broker.Value);
    readonly SemaphoreSlim _reading = new(1, 1);
    volatile DelayedTasksSnapshot? _latest;

    /// <summary>False without <see cref="LaneQueueDashboardOptions.ManagementUrl"/>: the tree is not read then.</summary>
    public bool Available => _management is not null;

    /// <summary>The latest read, or a new one when it is older than <see cref="LaneQueueDashboardOptions.DelayedReadInterval"/>.</summary>
    public async Task<DelayedTasksSnapshot> LatestAsync(CancellationToken cancellationToken)
    {
        var interval = options.Value.DelayedReadInterval;
        if (_latest is { } fresh && DateTimeOffset.UtcNow - fresh.At < interval)
            return fresh;
        await _reading.WaitAsync(cancellationToken);
        try
        {
            if (_latest is { } other && DateTimeOffset.UtcNow - other.At < interval)
                return other; // read by another viewer meanwhile
            return _latest = await ReadAsync(cancellationToken);
        }
        finally
        {
            _reading.Release();
        }
    }

    async Task<DelayedTasksSnapshot> ReadAsync(CancellationToken cancellationToken)
    {
        var shown = options.Value.DelayedTasksShown;
        var started = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            var total = 0L;
            var peeked = 0;
            var complete = true;
            var tasks = new List<DelayedTaskView>();
            for (var level = 0; level < DelayTopology.Levels; level++)
            {
                // Every level, empty ones too: the management API's queue depths lag by its statistics interval (5 s), a
                // basic.get does not, and its message_count (left in the queue after each message taken) gives the depth.
                using var messages = await _management!.PeekAsync(BrokerNames.DelayQueue(level), shown, BodyBytesRead, cancellationToken);
                var count = messages.RootElement.GetArrayLength();
                if (count == 0)
                    continue;
                total += count + messages.RootElement[count - 1].GetProperty("message_count").GetInt64();
                peeked += count;
                complete &= count < shown;
                tasks.AddRange(messages.RootElement.EnumerateArray().Select(m => Read(m, level)).OfType<DelayedTaskView>());
            }
            var soonest = tasks.OrderBy(t => t.Due).ThenBy(t => t.TaskId, StringComparer.Ordinal).Take(shown).ToList();
            return new DelayedTasksSnapshot(DateTimeOffset.UtcNow, total, peeked, complete, soonest, Math.Round(started.Elapsed.TotalMilliseconds, 1));
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or JsonException && !cancellationToken.IsCancellationRequested)
        {
            LogReadFailed(logger, ex.Message);
            return new DelayedTasksSnapshot(DateTimeOffset.UtcNow, 0, 0, false, [], Math.Round(started.Elapsed.TotalMilliseconds, 1),
                $"could not read the delay tree from the management API ({ex.Message}); check LaneQueueDashboardOptions.ManagementUrl and that its user has the management tag");
        }
    }

    /// <summary>A peeked message as a delayed task: its due time, and id, lane and session from the body (or its properties).</summary>
    static DelayedTaskView? Read(JsonElement message, int level)
    {
        var properties = message.GetProperty("properties");
        if (!properties.TryGetProperty("headers", out var headers) || headers.ValueKind != JsonValueKind.Object
            || !headers.TryGetProperty(BrokerNames.DueHeader, out var dueMs) || !dueMs.TryGetInt64(out var ms))
            return null; // not a task of the tree
        var id = properties.TryGetProperty("message_id", out var messageId) ? messageId.GetString() : null;
        var routingKey = message.TryGetProperty("routing_key", out var key) ? key.GetString() : null;
        var lane = routingKey?[(routingKey.LastIndexOf('.') + 1)..];
        string? session = null;
        if (Body(message) is { } body)
        {
            try
            {
                var task = TaskParser.Parse(body);
                (id, lane, session) = (task.Id, task.Lane.WireName(), task.SessionId);
            }
            catch (InvalidTaskException)
            {
                // shown with what its properties say
            }
        }
        return id is null ? null : new DelayedTaskView(id, lane, session, DateTimeOffset.FromUnixTimeMilliseconds(ms), level);
    }

    /// <summary>The whole body, or null when the management API cut it.</summary>
    static byte[]? Body(JsonElement message)
    {
        if (message.GetProperty("payload_bytes").GetInt64() > BodyBytesRead)
            return null;
        var payload = message.GetProperty("payload").GetString() ?? "";
        return message.GetProperty("payload_encoding").GetString() == "base64" ? Convert.FromBase64String(payload) : Encoding.UTF8.GetBytes(payload);
    }

    [LoggerMessage(EventId = 3, Level = LogLevel.Warning, Message = "LaneQueue dashboard could not read the delayed tasks from the management API: {Error}")]
    static partial void LogReadFailed(ILogger logger, string error);
}
