using LaneQueue.Contracts;
using Microsoft.Extensions.Options;

namespace LaneQueue.Producer;

/// <summary>Checks <see cref="ProducerOptions"/> at host start; every failure names its <c>LaneQueue:</c> setting.</summary>
internal sealed class ProducerOptionsValidator : IValidateOptions<ProducerOptions>
{
    public ValidateOptionsResult Validate(string? name, ProducerOptions options)
    {
        var problems = Problems(options);
        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
    }

    /// <summary>What is wrong with the options (empty when nothing is).</summary>
    public static List<string> Problems(ProducerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var problems = new List<string>();
        if (!BrokerAddress.TryParse(options.RabbitMqUrl, out _, out var urlError))
            problems.Add($"LaneQueue:RabbitMqUrl must be an amqp:// or amqps:// URL (several hosts separated by commas for a cluster): {urlError}");
        if (options.MaxPayloadBytes < 1)
            problems.Add($"LaneQueue:MaxPayloadBytes must be positive, got {options.MaxPayloadBytes}");
        if (string.IsNullOrWhiteSpace(options.ClientName))
            problems.Add("LaneQueue:ClientName must not be empty");
        if (options.RecoveryTimeout < TimeSpan.Zero)
            problems.Add($"LaneQueue:RecoveryTimeout must not be negative, got {options.RecoveryTimeout}");
        if (!Enum.IsDefined(options.Topology))
            problems.Add($"LaneQueue:Topology must be {LaneTopology.QueuePerLane} or {LaneTopology.PriorityQueue}, got {options.Topology}");
        foreach (var (lane, shards) in options.SessionShards)
        {
            if (shards is < 0 or > Contracts.SessionShards.Max)
                problems.Add($"LaneQueue:SessionShards:{lane} must be between 0 and {Contracts.SessionShards.Max}, got {shards}");
        }
        foreach (var (lane, limit) in options.SessionLimits)
        {
            if (limit is < 0 or > 10_000)
                problems.Add($"LaneQueue:SessionLimits:{lane} must be between 0 and 10000, got {limit}");
        }
        if (options.DeliveryLimit is { } deliveryLimit && (deliveryLimit is < 1 or > 10_000 || !options.QuorumQueues))
            problems.Add($"LaneQueue:DeliveryLimit needs LaneQueue:QuorumQueues=true (classic queues have no delivery limit) and a value between 1 and 10000, got {deliveryLimit}");
        problems.AddRange(BrokerTopology.HistoryProblems(options.HistoryMaxAge, options.HistoryMaxBytes));
        return problems;
    }
}
