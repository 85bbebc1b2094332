using System.Text.Json;
using System.Text.Json.Serialization;
using LaneQueue.Contracts;
using RabbitMQ.Client;

namespace LaneQueue.Producer;

/// <summary>Per-lane counts of ended runs, as the task history holds them.</summary>
internal sealed record LaneCounts
{
    [JsonPropertyName("completed")] public long Completed { get; init; }
    /// <summary>Runs that failed or timed out (retried or not).</summary>
    [JsonPropertyName("failed")] public long Failed { get; init; }
    [JsonPropertyName("dead_lettered")] public long DeadLettered { get; init; }
}

/// <summary>The counts up to a point of the history stream: read on from <see cref="NextOffset"/>.</summary>
internal sealed record CountsCheckpoint
{
    [JsonPropertyName("next_offset")] public long NextOffset { get; init; }
    [JsonPropertyName("at")] public DateTimeOffset At { get; init; } = DateTimeOffset.UtcNow;
    [JsonPropertyName("lanes")] public Dictionary<string, LaneCounts> Lanes { get; init; } = [];
}

/// <summary>
/// The fleet's counts for <c>stats</c>, from the task history (<see cref="BrokerNames.History"/>): every
/// <c>completed</c> result, <c>command.failed</c>/<c>command.timeout</c> and <c>command.dead_lettered</c> event any consumer
/// ever published, so a consumer that restarts (its own counters start at 0) takes nothing away. Each read goes on from the
/// last checkpoint — the counts up to a stream offset, kept as the one message of <see cref="BrokerNames.HistoryCounts"/> —
/// to the end of the stream (<see cref="HistoryStream"/>), then stores the new checkpoint.
/// Two readers at once are both right: one takes the checkpoint, the other reads from the stream's start; the queue keeps
/// the last checkpoint stored. Events the stream's retention dropped before any read counted them are not counted.
/// </summary>
internal static class HistoryCounts
{
    public static async Task<CountsCheckpoint> ReadAsync(IConnection connection, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connection);
        await using var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
        var checkpoint = await TakeCheckpointAsync(channel, cancellationToken) ?? new CountsCheckpoint();
        var counts = SessionLanes.All.ToDictionary(l => l.WireName(), l => checkpoint.Lanes.GetValueOrDefault(l.WireName()) ?? new LaneCounts(), StringComparer.Ordinal);
        long next;
        try
        {
            var end = await HistoryStream.ReadToEndAsync(connection, checkpoint.NextOffset, (body, properties) => HistoryStream.ForEachRecord(body, properties, record => Count(record, counts)), TimeSpan.FromSeconds(120), cancellationToken);
            next = end is { } markerOffset ? Math.Max(checkpoint.NextOffset, markerOffset + 1) : checkpoint.NextOffset;
        }
        catch
        {
            // Put the checkpoint back: the next read goes on from it instead of the stream's start.
            await StoreAsync(channel, checkpoint, CancellationToken.None);
            throw;
        }

        var updated = new CountsCheckpoint { NextOffset = next, Lanes = counts };
        await StoreAsync(channel, updated, cancellationToken);
        return updated;
    }

    static async Task StoreAsync(IChannel channel, CountsCheckpoint checkpoint, CancellationToken cancellationToken) =>
        await channel.BasicPublishAsync("", BrokerNames.HistoryCounts, mandatory: false,
            new BasicProperties { Persistent = true, ContentType = "application/json" }, TaskJson.Serialize(checkpoint), cancellationToken);

    /// <summary>Takes the stored checkpoint off its queue (null when there is none or it cannot be read).</summary>
    static async Task<CountsCheckpoint?> TakeCheckpointAsync(IChannel channel, CancellationToken cancellationToken)
    {
        if (await channel.BasicGetAsync(BrokerNames.HistoryCounts, autoAck: true, cancellationToken) is not { } stored)
            return null;
        try
        {
            return TaskJson.Deserialize<CountsCheckpoint>(stored.Body.Span);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>
    /// Counts one history record: a <c>completed</c> result as a completed run (consumers do not store the
    /// <c>command.completed</c> event; an older consumer's such event is passed over, its result counted instead), a
    /// <c>command.failed</c> / <c>command.timeout</c> event as a failed run, a <c>command.dead_lettered</c> event as a dead letter.
    /// </summary>
    static void Count(JsonElement root, Dictionary<string, LaneCounts> counts)
    {
        if (!root.TryGetProperty("lane", out var lane) || lane.ValueKind != JsonValueKind.String
            || lane.GetString() is not { } key || !counts.TryGetValue(key, out var current))
            return;
        if (!root.TryGetProperty("event", out var name))
        {
            if (root.TryGetProperty("status", out var status) && status.ValueKind == JsonValueKind.String && status.ValueEquals(TaskStatuses.Completed))
                counts[key] = current with { Completed = current.Completed + 1 };
            return;
        }
        if (name.ValueKind != JsonValueKind.String)
            return;
        counts[key] = name.GetString() switch
        {
            TaskEvent.Failed or TaskEvent.Timeout => current with { Failed = current.Failed + 1 },
            TaskEvent.DeadLettered => current with { DeadLettered = current.DeadLettered + 1 },
            _ => current,
        };
    }
}
