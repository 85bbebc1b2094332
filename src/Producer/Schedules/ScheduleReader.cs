using System.Text.Json;
using LaneQueue.Contracts;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace LaneQueue.Producer;

/// <summary>
/// Reads the schedules for a listing: the schedule commands of <see cref="BrokerNames.FleetState"/> (folded in a
/// <see cref="ScheduleTable"/>) and the last firing per schedule from <see cref="BrokerNames.SchedulesFired"/>. Needs only read
/// permission, so the end of a stream is where deliveries go quiet (<see cref="Quiet"/> after a message, <see cref="FirstQuiet"/>
/// before the first), not a marker: on a broker slower than that a listing can miss the newest records.
/// </summary>
internal static class ScheduleReader
{
    static readonly TimeSpan Quiet = TimeSpan.FromMilliseconds(400);

    /// <summary>How long a stream may stay silent before its first message (an empty stream costs this much).</summary>
    static readonly TimeSpan FirstQuiet = TimeSpan.FromMilliseconds(1000);

    public static async Task<IReadOnlyList<ScheduleInfo>> ListAsync(IConnection connection, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var table = new ScheduleTable();
        await ReadQuietAsync(connection, BrokerNames.FleetState, body =>
        {
            if (TryRead<FleetCommand>(body) is { } command)
                table.Apply(command);
        }, cancellationToken);
        var last = new Dictionary<string, ScheduleFiring>(StringComparer.Ordinal);
        await ReadQuietAsync(connection, BrokerNames.SchedulesFired, body => Fold(last, body), cancellationToken);
        return [.. table.Current.Select(s => ScheduleFirings.Info(s, last.GetValueOrDefault(s.Schedule.Id), now))];
    }

    /// <summary>Keeps the latest firing (by due time) per schedule.</summary>
    public static void Fold(Dictionary<string, ScheduleFiring> last, ReadOnlyMemory<byte> body)
    {
        if (body.IsEmpty || TryRead<ScheduleFiring>(body) is not { } firing)
            return;
        if (!last.TryGetValue(firing.ScheduleId, out var known) || firing.Due > known.Due)
            last[firing.ScheduleId] = firing;
    }

    static T? TryRead<T>(ReadOnlyMemory<byte> body) where T : class
    {
        try
        {
            return TaskJson.Deserialize<T>(body.Span);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>Every message of a stream from its start until none arrives for <see cref="Quiet"/> (at most 30 s).</summary>
    static async Task ReadQuietAsync(IConnection connection, string stream, Action<ReadOnlyMemory<byte>> onMessage, CancellationToken cancellationToken)
    {
        await using var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
        await channel.BasicQosAsync(0, 1000, false, cancellationToken);
        long lastTicks = DateTime.UtcNow.Ticks;
        var any = false;
        var gate = new object();
        var consumer = new AsyncEventingBasicConsumer(channel);
        var done = false;
        consumer.ReceivedAsync += async (_, delivery) =>
        {
            lock (gate)
            {
                if (done)
                    return;
                onMessage(delivery.Body);
                lastTicks = DateTime.UtcNow.Ticks;
                any = true;
            }
            await channel.BasicAckAsync(delivery.DeliveryTag, multiple: false);
        };
        try
        {
            await channel.BasicConsumeAsync(stream, autoAck: false, "", noLocal: false, exclusive: false,
                new Dictionary<string, object?> { ["x-stream-offset"] = "first" }, consumer, cancellationToken);
        }
        catch (RabbitMQ.Client.Exceptions.OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == 404)
        {
            return; // not declared yet (no consumer has run): nothing in it
        }
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (DateTime.UtcNow < deadline)
        {
            await Task.Delay(50, cancellationToken);
            lock (gate)
            {
                if (DateTime.UtcNow.Ticks - lastTicks >= (any ? Quiet : FirstQuiet).Ticks)
                {
                    done = true;
                    break;
                }
            }
        }
        lock (gate)
            done = true;
    }
}
