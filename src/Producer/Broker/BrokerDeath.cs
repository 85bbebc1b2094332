using System.Text;

namespace LaneQueue.Producer;

/// <summary>
/// The latest entry of a message's <c>x-death</c> header: the broker dead-lettered it itself, for <see cref="Reason"/>
/// (<c>delivery_limit</c>, <c>expired</c>, <c>maxlen</c> or <c>rejected</c>), from <see cref="Queue"/>. RabbitMQ keeps the
/// newest entry first.
/// </summary>
internal sealed record BrokerDeath(string Reason, string Queue)
{
    /// <summary>The latest death, or null when the broker never dead-lettered the message.</summary>
    public static BrokerDeath? Read(IDictionary<string, object?>? headers)
    {
        if (headers is null || !headers.TryGetValue("x-death", out var value) || value is not IList<object> deaths || deaths.Count == 0
            || deaths[0] is not IDictionary<string, object?> death)
            return null;
        return Text(death, "reason") is { } reason ? new BrokerDeath(reason, Text(death, "queue") ?? "") : null;
    }

    /// <summary>A header's text (AMQP strings arrive as bytes).</summary>
    public static string? Text(IDictionary<string, object?>? headers, string key) =>
        headers is not null && headers.TryGetValue(key, out var value) && value is not null
            ? value is byte[] bytes ? Encoding.UTF8.GetString(bytes) : value.ToString()
            : null;
}
