using System.Text.Json;
using LaneQueue.Contracts;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace LaneQueue.Producer;

/// <summary>
/// Reads <see cref="BrokerNames.History"/> (a stream) from an offset to its end. The end is found with a marker: the reader
/// appends one (default exchange, routing key = the stream) and reads until it comes back, so no "quiet for a while" guess
/// is needed. Reading needs read permission on the stream, appending the marker write permission.
/// </summary>
internal static class HistoryStream
{
    /// <summary>
    /// Hands every message from <paramref name="offset"/> (an <c>x-stream-offset</c>: a number, <c>"first"</c> or an
    /// <see cref="AmqpTimestamp"/>) up to the marker to <paramref name="onMessage"/>, one at a time, and returns the
    /// marker's own stream offset (read on from the one after it). Throws <see cref="TimeoutException"/> when the end is
    /// not reached in <paramref name="timeout"/>.
    /// </summary>
    public static async Task<long?> ReadToEndAsync(IConnection connection, object offset, Action<ReadOnlyMemory<byte>, IReadOnlyBasicProperties> onMessage,
        TimeSpan timeout, CancellationToken cancellationToken, string stream = BrokerNames.History)
    {
        ArgumentNullException.ThrowIfNull(connection);
        var marker = Guid.NewGuid().ToString("N");
        var reachedEnd = new TaskCompletionSource<long?>(TaskCreationOptions.RunContinuationsAsynchronously);

        await using var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
        await channel.BasicQosAsync(0, 1000, false, cancellationToken);
        var consumer = new AsyncEventingBasicConsumer(channel);
        consumer.ReceivedAsync += async (_, delivery) =>
        {
            // Nothing is sent on the channel once the end is reached: the reader closes it then, and an ack that follows
            // the close is a connection error (504 CHANNEL_ERROR "expected 'channel.open'") that takes the caller's
            // connection down with it. So the marker is acked before the end is signalled.
            if (reachedEnd.Task.IsCompleted)
                return;
            var headers = delivery.BasicProperties.Headers;
            var isMarker = headers?.TryGetValue(BrokerNames.HistoryMarkerHeader, out var value) == true
                && value is byte[] bytes && System.Text.Encoding.UTF8.GetString(bytes) == marker;
            if (!isMarker && !delivery.Body.IsEmpty)
                onMessage(delivery.Body, delivery.BasicProperties);
            await channel.BasicAckAsync(delivery.DeliveryTag, multiple: false);
            if (isMarker)
                reachedEnd.TrySetResult(headers?.TryGetValue("x-stream-offset", out var at) == true && at is long streamOffset ? streamOffset : null);
        };
        await channel.BasicConsumeAsync(stream, autoAck: false, "", noLocal: false, exclusive: false,
            new Dictionary<string, object?> { ["x-stream-offset"] = offset }, consumer, cancellationToken);
        await channel.BasicPublishAsync("", stream, mandatory: false,
            new BasicProperties { Headers = new Dictionary<string, object?> { [BrokerNames.HistoryMarkerHeader] = marker } }, ReadOnlyMemory<byte>.Empty, cancellationToken);
        return await reachedEnd.Task.WaitAsync(timeout, cancellationToken);
    }

    /// <summary>
    /// Hands each history record a stream message holds to <paramref name="onRecord"/>: the one result or event it is, or
    /// each event of a batch (<see cref="BrokerNames.HistoryBatchType"/>, <c>{"events":[...]}</c>). A single event whose
    /// copy is stored another way (header <see cref="BrokerNames.HistoryCopyHeader"/>) and a body that is not JSON give none.
    /// </summary>
    public static void ForEachRecord(ReadOnlyMemory<byte> body, IReadOnlyBasicProperties properties, Action<JsonElement> onRecord)
    {
        ArgumentNullException.ThrowIfNull(onRecord);
        if (properties?.Headers?.ContainsKey(BrokerNames.HistoryCopyHeader) == true)
            return;
        try
        {
            using var document = JsonDocument.Parse(body);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                return;
            if (!root.TryGetProperty("task_id", out _) && root.TryGetProperty("events", out var events) && events.ValueKind == JsonValueKind.Array)
            {
                foreach (var item in events.EnumerateArray())
                {
                    if (item.ValueKind == JsonValueKind.Object)
                        onRecord(item);
                }
            }
            else
            {
                onRecord(root);
            }
        }
        catch (JsonException)
        {
            // not one of ours
        }
    }
}
