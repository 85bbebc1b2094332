using System.Text.Json.Serialization;
using LaneQueue.Contracts;

namespace LaneQueue.Consumer;

/// <summary>
/// What the fleet monitor broadcasts on <see cref="BrokerNames.LaneStatesExchange"/>: each lane's ready depth at the broker.
/// Sent when a lane gains or loses ready work and every
/// <see cref="FleetMonitor.RefreshInterval"/> (so a consumer that starts later catches up).
/// </summary>
internal sealed record LaneStates
{
    [JsonPropertyName("monitor")]
    public required string Monitor { get; init; }

    [JsonPropertyName("at")]
    public DateTimeOffset At { get; init; }

    [JsonPropertyName("lanes")]
    public required IReadOnlyList<LaneState> Lanes { get; init; }

    internal sealed record LaneState
    {
        [JsonPropertyName("lane")]
        [JsonConverter(typeof(SessionLaneJsonConverter))]
        public SessionLane Lane { get; init; }

        [JsonPropertyName("ready")]
        public long Ready { get; init; }
    }
}
