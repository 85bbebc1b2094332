using System.Text;
using LaneQueue.Contracts;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;

namespace LaneQueue.Consumer;

/// <summary>
/// De-duplication keys across the fleet (<c>dedup_key</c> with <c>dedup_window_ms</c>), kept by the broker, not by a
/// consumer: the first task to claim a key runs, any other task with the same key inside the window is answered
/// <c>duplicate</c> with the first one's id.
/// <para>
/// A claim is a message in the key's claim queue (<see cref="BrokerNames.DedupQueue"/>: classic, durable, at most one ready
/// message with <c>x-overflow: reject-publish</c>, messages live for the window, the queue goes 60 s after its last use). The
/// broker confirms the first claim's publish and nacks every later one while the first is there, so two consumers can
/// never both win, whatever their timing; nobody ever reads the claim queue (a read would take the message out of the
/// count). Who won is kept beside it (<see cref="BrokerNames.DedupOwnerQueue"/>, the winner's task id, same lifetime), for
/// the duplicates' answers and so that a redelivered winner (its consumer died) still runs.
/// </para>
/// </summary>
internal sealed class DedupClaims(BrokerPublisher publisher)
{
    /// <summary>How long a key's queues outlive their last use.</summary>
    const long QueueExpiresAfterMs = 60_000;

    /// <summary>
    /// Claims <paramref name="key"/> for <paramref name="taskId"/>: null when this task holds it (first, or the holder
    /// itself delivered again), else the holder's task id (empty when it could not be read: the holder's record expired
    /// a moment ago or is being read by another consumer). <paramref name="copy"/> is the publish's
    /// <see cref="BrokerNames.CopyHeader"/> token, if any: a task with the holder's id but another token is a second copy
    /// of that id, and is told the holder's id like any other task.
    /// </summary>
    public Task<string?> ClaimAsync(string key, long windowMs, string taskId, CancellationToken cancellationToken) =>
        ClaimAsync(key, windowMs, taskId, null, cancellationToken);

    /// <inheritdoc cref="ClaimAsync(string, long, string, CancellationToken)"/>
    public async Task<string?> ClaimAsync(string key, long windowMs, string taskId, string? copy, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        var claim = BrokerNames.DedupQueue(key, windowMs);
        var owner = BrokerNames.DedupOwnerQueue(key, windowMs);
        var body = Encoding.UTF8.GetBytes(taskId);
        string? holder = null;
        await publisher.WithRecoveryAsync(async channel =>
        {
            holder = null;
            await channel.QueueDeclareAsync(claim, durable: true, exclusive: false, autoDelete: false, Arguments(windowMs, "reject-publish"), cancellationToken: cancellationToken);
            await channel.QueueDeclareAsync(owner, durable: true, exclusive: false, autoDelete: false, Arguments(windowMs, "drop-head"), cancellationToken: cancellationToken);
            try
            {
                await channel.BasicPublishAsync("", claim, mandatory: true, Marker, body, cancellationToken);
            }
            catch (PublishException ex) when (!ex.IsReturn)
            {
                // Nacked: the key is held, by another task or by this one (delivered again after its consumer died).
                var record = await HolderAsync(channel, owner, cancellationToken);
                holder = record?.TaskId;
                if (record is not { } held || IsHolder(held, taskId, copy))
                    holder = null; // this task delivered again, or no record (the holder died between its claim and its record, most likely this task): run rather than lose it
                return;
            }
            // Claimed: say who holds it (drop-head: this record replaces one that outlived its claim by a moment).
            await channel.BasicPublishAsync("", owner, mandatory: true, Record(copy), body, cancellationToken);
        }, cancellationToken);
        return holder;
    }

    /// <summary>
    /// Debounce (<c>dedup_mode: "debounce"</c>): records <paramref name="taskId"/> as the latest task seen with
    /// <paramref name="key"/> (<see cref="BrokerNames.DebounceLatestQueue"/>, one message, drop-head: it replaces the record of
    /// an earlier task), confirmed. Called when a consumer first sees the task, before it waits in the delay tree.
    /// </summary>
    public Task RecordLatestAsync(string key, long windowMs, string taskId, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        var latest = BrokerNames.DebounceLatestQueue(key, windowMs);
        var body = Encoding.UTF8.GetBytes(taskId);
        return publisher.WithRecoveryAsync(async channel =>
        {
            await channel.QueueDeclareAsync(latest, durable: true, exclusive: false, autoDelete: false, Arguments(windowMs, "drop-head"), cancellationToken: cancellationToken);
            await channel.BasicPublishAsync("", latest, mandatory: true, Marker, body, cancellationToken);
        }, cancellationToken);
    }

    /// <summary>
    /// Debounce: the id of the latest task seen with <paramref name="key"/> (read and put back), or null when there is no
    /// record (it expired with its window, or other consumers held it for the whole read). A task that comes due and finds
    /// another id here was replaced; its own id or null: it runs.
    /// </summary>
    public async Task<string?> LatestAsync(string key, long windowMs, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        var latest = BrokerNames.DebounceLatestQueue(key, windowMs);
        string? id = null;
        await publisher.WithRecoveryAsync(async channel =>
        {
            await channel.QueueDeclareAsync(latest, durable: true, exclusive: false, autoDelete: false, Arguments(windowMs, "drop-head"), cancellationToken: cancellationToken);
            id = (await HolderAsync(channel, latest, cancellationToken))?.TaskId;
        }, cancellationToken);
        return id;
    }

    /// <summary>The error of a debounced task answered <c>duplicate</c> because <paramref name="latest"/>, seen later, replaced it.</summary>
    public static string ReplacedError(string key, string latest) =>
        $"dedup_key '{key}' was replaced by task '{latest}' (debounce); not run";

    /// <summary>
    /// Whether a task is the holder itself, delivered again (a redelivery, retry or return to its lane keeps its publish token):
    /// the holder's id, and not two different <see cref="BrokerNames.CopyHeader"/> tokens (that is a second publish of the id).
    /// </summary>
    static bool IsHolder((string TaskId, string? Copy) held, string taskId, string? copy) =>
        held.TaskId == taskId && (copy is null || held.Copy is null || copy == held.Copy);

    /// <summary>The holder's task id and publish token from the owner record (read and put back), or null when there is none after a few tries.</summary>
    static async Task<(string TaskId, string? Copy)?> HolderAsync(IChannel channel, string owner, CancellationToken cancellationToken)
    {
        for (var attempt = 0; attempt < 10; attempt++)
        {
            var read = await channel.BasicGetAsync(owner, autoAck: false, cancellationToken);
            if (read is not null)
            {
                await channel.BasicNackAsync(read.DeliveryTag, multiple: false, requeue: true, cancellationToken);
                return (Encoding.UTF8.GetString(read.Body.Span), CopyOf(read.BasicProperties));
            }
            await Task.Delay(20, cancellationToken); // another consumer holds the record for a moment, or the holder is writing it
        }
        return null;
    }

    /// <summary>The error of a task answered <c>duplicate</c> because <paramref name="holder"/> holds its key ("" when unknown).</summary>
    public static string HeldError(string key, string holder, long windowMs) =>
        $"dedup_key '{key}' is held by task '{(holder.Length > 0 ? holder : "?")}' (window {windowMs} ms); not run";

    static Dictionary<string, object?> Arguments(long windowMs, string overflow) => new()
    {
        ["x-max-length"] = 1,
        ["x-overflow"] = overflow,
        ["x-message-ttl"] = windowMs,
        ["x-expires"] = windowMs + QueueExpiresAfterMs,
    };

    static readonly BasicProperties Marker = new() { Persistent = true, ContentType = "text/plain" };

    /// <summary>The owner record's properties: the holder's publish token in <see cref="BrokerNames.CopyHeader"/>, when it has one.</summary>
    static BasicProperties Record(string? copy) => copy is null
        ? Marker
        : new() { Persistent = true, ContentType = "text/plain", Headers = new Dictionary<string, object?> { [BrokerNames.CopyHeader] = copy } };

    /// <summary>A message's <see cref="BrokerNames.CopyHeader"/> token (RabbitMQ.Client reads a string header as bytes), or null.</summary>
    public static string? CopyOf(IReadOnlyBasicProperties? properties) =>
        properties?.Headers?.TryGetValue(BrokerNames.CopyHeader, out var value) == true
            ? value switch { byte[] bytes => Encoding.UTF8.GetString(bytes), string text => text, _ => null }
            : null;
}
