using System.Text;
using LaneQueue.Contracts;
using RabbitMQ.Client;

namespace LaneQueue.Producer;

/// <summary>One message in a dead-letter queue, with why it is there.</summary>
public sealed record DeadLetter(string? TaskId, SessionLane? Lane, string Reason, int Attempts, string? LastError, DateTimeOffset? At, string Body);

/// <summary>
/// The dead-letter queues (<c>lanequeue.&lt;lane&gt;_error</c>): list them, send tasks back to their lane (one by id, or
/// all), purge them. Redrive re-publishes with publisher confirms before it removes the dead letter, so a crash in
/// between duplicates a task rather than losing it.
/// </summary>
public sealed class DeadLetters(IConnection connection)
{
    /// <summary>The queue that holds a lane's dead letters (queue-per-lane topology).</summary>
    public static string QueueOf(SessionLane lane) => BrokerNames.DeadLetterQueue(BrokerNames.LaneQueue(lane));

    /// <summary>Reads up to <paramref name="max"/> dead letters without removing them (none when the queue does not exist yet).</summary>
    public async Task<IReadOnlyList<DeadLetter>> ListAsync(string queue, int max = 1000, CancellationToken cancellationToken = default)
    {
        await using var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
        var letters = new List<DeadLetter>();
        try
        {
            while (letters.Count < max && await channel.BasicGetAsync(queue, autoAck: false, cancellationToken) is { } message)
                letters.Add(Describe(message));
        }
        catch (RabbitMQ.Client.Exceptions.OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == 404)
        {
            return []; // the dead-letter queue appears with its first dead letter
        }
        // Closing the channel without acks puts every message back, in order.
        return letters;
    }

    /// <summary>Moves dead letters back to their lane (all, or those whose task id is <paramref name="taskId"/>); returns how many.</summary>
    public async Task<int> RedriveAsync(string queue, string? taskId = null, IProgress<int>? progress = null, CancellationToken cancellationToken = default)
    {
        await using var reader = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
        await using var writer = await connection.CreateChannelAsync(
            new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true), cancellationToken);
        var moved = 0;
        // Messages skipped stay unacked on this channel, so each basic.get returns the next one until the queue is empty.
        while (await reader.BasicGetAsync(queue, autoAck: false, cancellationToken) is { } message)
        {
            var letter = Describe(message);
            if (letter.Lane is not { } lane || (taskId is not null && letter.TaskId != taskId))
                continue; // left unacked: back in the queue when the channel closes
            var properties = TaskMessage.Properties(
                new ExternalTask { Id = letter.TaskId!, Lane = lane },
                new Dictionary<string, object?> { [BrokerNames.AttemptHeader] = 0, ["x-lanequeue-redriven"] = true });
            await writer.BasicPublishAsync(BrokerNames.TasksExchange, BrokerNames.RoutingKey(lane), mandatory: true, properties, message.Body, cancellationToken);
            await reader.BasicAckAsync(message.DeliveryTag, multiple: false, cancellationToken);
            moved++;
            progress?.Report(moved);
        }
        return moved;
    }

    /// <summary>How many dead letters wait in a queue (a passive declare: nothing is touched); 0 when the queue does not exist.</summary>
    public async Task<uint> CountAsync(string queue, CancellationToken cancellationToken = default)
    {
        await using var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
        try
        {
            return (await channel.QueueDeclarePassiveAsync(queue, cancellationToken)).MessageCount;
        }
        catch (RabbitMQ.Client.Exceptions.OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == 404)
        {
            return 0;
        }
    }

    /// <summary>Deletes every dead letter of a queue; returns how many.</summary>
    public async Task<uint> PurgeAsync(string queue, CancellationToken cancellationToken = default)
    {
        await using var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
        return await channel.QueuePurgeAsync(queue, cancellationToken);
    }

    static DeadLetter Describe(BasicGetResult message)
    {
        var headers = message.BasicProperties.Headers;
        var body = Encoding.UTF8.GetString(message.Body.Span);
        string? id = null;
        SessionLane? lane = null;
        try
        {
            var task = TaskParser.Parse(message.Body, int.MaxValue);
            id = task.Id;
            lane = task.Lane;
        }
        catch (InvalidTaskException)
        {
            // malformed: listed (with its id when that can be read), but it cannot be redriven
            id = TaskIdentity.Read(message.Body.Span)?.Id;
        }
        return new DeadLetter(
            id ?? message.BasicProperties.MessageId,
            lane,
            Text(headers, BrokerNames.ReasonHeader) ?? BrokerDeathReason(headers) ?? "unknown",
            int.TryParse(Text(headers, BrokerNames.AttemptHeader), out var attempts) ? attempts + 1 : 1,
            Text(headers, BrokerNames.LastErrorHeader),
            DateTimeOffset.TryParse(Text(headers, "MT-Fault-Timestamp"), out var at) ? at : null,
            body.Length > 2000 ? body[..2000] + "…" : body);
    }

    /// <summary>Why the broker itself dead-lettered a message (<c>x-death</c>: e.g. <c>delivery_limit</c> for a task that kept killing its consumers).</summary>
    static string? BrokerDeathReason(IDictionary<string, object?>? headers) =>
        BrokerDeath.Read(headers) is not { } death ? null
        : death.Reason == "delivery_limit"
            ? $"delivery_limit: delivered more times than the queue's x-delivery-limit without being acked (did the task crash its consumers?) in {death.Queue}"
            : $"{death.Reason} (dead-lettered by the broker from {death.Queue})";

    static string? Text(IDictionary<string, object?>? headers, string key) => BrokerDeath.Text(headers, key);
}
