using System.Text;

namespace LaneQueue.Producer;

/// <summary>
/// The latest entry of a message's <c>x-death</c> header: the broker dead-lettered it itself, for <see cref="Reason"/>
/// (<c>delivery_limit</c>, <c>expired</c>, <c>maxlen</c> or <c>rejected</c>), from <see cref="Queue"/>. RabbitMQ keeps the
/// newest entry first.
/// </summary>
internal sealed record BrokerDeath(string Reason, string Queue)
{
    /// <summary>
    /// The latest death, or null when the broker never dead-lettered the message. The hops of a delayed task through the delay
    /// tree (<c>expired</c> from a <c>lanequeue.delay.*</c> queue, one entry per hop queue) are how it travels, not a death:
    /// skipped, so a delayed task's history is never taken for a broker dead letter.
    /// </summary>
    public static BrokerDeath? Read(IDictionary<string, object?>? headers)
    {
        if (headers is null || !headers.TryGetValue("x-death", out var value) || value is not IList<object> deaths)
            return null;
        foreach (var entry in deaths)
        {
            if (entry is not IDictionary<string, object?> death)
                continue;
            var queue = Text(death, "queue") ?? "";
            if (IsDelayHop(queue))
                continue;
            return Text(death, "reason") is { } reason ? new BrokerDeath(reason, queue) : null;
        }
        return null;
    }

    /// <summary>Whether <paramref name="queue"/> is a hop queue of the delay tree (<see cref="Contracts.BrokerNames.DelayLevel"/>).</summary>
    public static bool IsDelayHop(string queue) => queue.StartsWith(Contracts.BrokerNames.Prefix + ".delay.", StringComparison.Ordinal);

    /// <summary>A header's whole number, written as an AMQP integer or as text by another client; null when absent or not a number.</summary>
    public static long? Number(IDictionary<string, object?>? headers, string key) =>
        long.TryParse(Text(headers, key), System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var number) ? number : null;

    /// <summary>A header's text (AMQP strings arrive as bytes).</summary>
    public static string? Text(IDictionary<string, object?>? headers, string key) =>
        headers is not null && headers.TryGetValue(key, out var value) && value is not null
            ? value is byte[] bytes ? Encoding.UTF8.GetString(bytes) : value.ToString()
            : null;
}
