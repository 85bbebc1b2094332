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
/// <c>command.completed</c>, <c>command.failed</c>/<c>command.timeout</c> and <c>command.dead_lettered</c> event any consumer
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
            var end = await HistoryStream.ReadToEndAsync(connection, checkpoint.NextOffset, body => Count(body, counts), TimeSpan.FromSeconds(120), cancellationToken);
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

    static void Count(ReadOnlyMemory<byte> body, Dictionary<string, LaneCounts> counts)
    {
        try
        {
            using var document = JsonDocument.Parse(body);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object
                || !root.TryGetProperty("event", out var name) || name.ValueKind != JsonValueKind.String
                || !root.TryGetProperty("lane", out var lane) || lane.ValueKind != JsonValueKind.String
                || lane.GetString() is not { } key || !counts.TryGetValue(key, out var current))
                return;
            counts[key] = name.GetString() switch
            {
                TaskEvent.Completed => current with { Completed = current.Completed + 1 },
                TaskEvent.Failed or TaskEvent.Timeout => current with { Failed = current.Failed + 1 },
                TaskEvent.DeadLettered => current with { DeadLettered = current.DeadLettered + 1 },
                _ => current,
            };
        }
        catch (JsonException)
        {
            // not an event
        }
    }
}
