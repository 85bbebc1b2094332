using System.Collections.Concurrent;
using LaneQueue.Contracts;
using Microsoft.Extensions.Options;

namespace LaneQueue.Consumer;

/// <summary>
/// Each lane's handler mode (Internal, External, Hybrid) and timeout: from <c>Queue:LaneHandlers</c>, changed at run time
/// by the fleet command <c>set_handler</c> (the reference's <c>set_lane_handler</c>).
/// </summary>
internal sealed class LaneModes(IOptions<LaneQueueOptions> options)
{
    readonly ConcurrentDictionary<SessionLane, LaneHandlerConfig> _overrides = new();

    public LaneHandlerConfig For(SessionLane lane) =>
        _overrides.TryGetValue(lane, out var config) ? config : options.Value.Queue.Handler(lane);

    public void Set(SessionLane lane, LaneHandlerConfig config) => _overrides[lane] = config;

    /// <summary>Applies a fleet command; returns true when it was a <c>set_handler</c>.</summary>
    public bool Apply(FleetCommand command)
    {
        ArgumentNullException.ThrowIfNull(command);
        if (command.Command != FleetCommand.SetHandler || !SessionLanes.TryParse(command.Lane, out var lane)
            || !Enum.TryParse<TaskHandlerMode>(command.Mode, ignoreCase: true, out var mode))
            return false;
        Set(lane.Value, new LaneHandlerConfig { Mode = mode, TimeoutMs = command.TimeoutMs ?? For(lane.Value).TimeoutMs });
        return true;
    }
}
