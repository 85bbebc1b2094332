using LaneQueue.Contracts;
using RabbitMQ.Client;

namespace LaneQueue.Producer;

/// <summary>The AMQP properties every task message carries, whoever publishes it (producer, retry, checkpoint, redrive).</summary>
internal static class TaskMessage
{
    /// <summary>Persistent JSON with the task id as message and correlation id, the lane's priority and a <c>lane</c> header.</summary>
    public static BasicProperties Properties(ExternalTask task, IDictionary<string, object?>? headers = null)
    {
        ArgumentNullException.ThrowIfNull(task);
        headers ??= new Dictionary<string, object?>();
        headers["lane"] = task.Lane.WireName();
        return new BasicProperties
        {
            Persistent = true,
            ContentType = "application/json",
            MessageId = task.Id,
            CorrelationId = task.Id,
            Type = "lanequeue.task",
            Priority = task.Lane.MessagePriority(),
            Timestamp = new AmqpTimestamp(task.CreatedAt.ToUnixTimeSeconds()),
            Headers = headers,
        };
    }
}
