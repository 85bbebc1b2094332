using System.CommandLine;
using LaneQueue.Contracts;
using LaneQueue.Producer;

namespace LaneQueue.Cli;

/// <summary>
/// The producer settings of a CLI run: the broker from <c>--url</c> (else <c>LANEQUEUE_RABBITMQ_URL</c>), and the lane
/// topology from the same environment variables the consumers read (<c>LaneQueue__Topology</c>,
/// <c>LaneQueue__QuorumQueues</c>, <c>LaneQueue__DeliveryLimit</c>, and the task history's <c>LaneQueue__HistoryMaxAge</c>,
/// <c>LaneQueue__HistoryMaxBytes</c>), so the CLI declares the lanes and streams exactly as the fleet does.
/// </summary>
static class CliProducerOptions
{
    public static ProducerOptions From(ParseResult parse)
    {
        ArgumentNullException.ThrowIfNull(parse);
        var options = new ProducerOptions { RabbitMqUrl = parse.GetValue(ProducerCli.Url)! };
        if (Setting("Topology") is { } topology)
        {
            options.Topology = Enum.TryParse<LaneTopology>(topology, ignoreCase: true, out var parsed)
                ? parsed
                : throw new ArgumentException($"LaneQueue__Topology must be QueuePerLane or PriorityQueue, got '{topology}'");
        }
        if (Setting("QuorumQueues") is { } quorum)
        {
            options.QuorumQueues = bool.TryParse(quorum, out var parsed)
                ? parsed
                : throw new ArgumentException($"LaneQueue__QuorumQueues must be true or false, got '{quorum}'");
        }
        if (Setting("DeliveryLimit") is { } limit)
        {
            options.DeliveryLimit = int.TryParse(limit, out var parsed)
                ? parsed
                : throw new ArgumentException($"LaneQueue__DeliveryLimit must be a whole number, got '{limit}'");
        }
        if (Setting("HistoryMaxAge") is { } maxAge)
            options.HistoryMaxAge = maxAge;
        if (Setting("HistoryMaxBytes") is { } maxBytes)
        {
            options.HistoryMaxBytes = long.TryParse(maxBytes, out var parsed)
                ? parsed
                : throw new ArgumentException($"LaneQueue__HistoryMaxBytes must be a whole number of bytes, got '{maxBytes}'");
        }
        return options;
    }

    static string? Setting(string name) =>
        Environment.GetEnvironmentVariable($"LaneQueue__{name}") is { Length: > 0 } value ? value : null;
}
