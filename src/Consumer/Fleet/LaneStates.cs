using System.Text.Json.Serialization;
using LaneQueue.Contracts;

namespace LaneQueue.Consumer;

/// <summary>
/// What the fleet monitor broadcasts on <see cref="BrokerNames.LaneStatesExchange"/>: for each lane whether the gate holds
/// it (and why) and its ready depth at the broker. Sent when a lane's state changes and every
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

        /// <summary>Why the gate holds the lane; null when it is open.</summary>
        [JsonPropertyName("held")]
        public string? Held { get; init; }

        [JsonPropertyName("ready")]
        public long Ready { get; init; }

        /// <summary>
        /// Whether consumers put back deliveries of the held lane they already hold (the default), or let them start: a lane
        /// closed again right after aging admitted it, whose admitted task may be one of them.
        /// </summary>
        [JsonPropertyName("return_held")]
        public bool ReturnHeld { get; init; } = true;
    }
}
