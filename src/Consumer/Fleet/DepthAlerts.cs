using LaneQueue.Contracts;
using Microsoft.Extensions.Logging;

namespace LaneQueue.Consumer;

/// <summary>
/// Queue-depth alerts (with <c>Queue:EnableAlerts</c>): a lane's ready depth crossing <c>AlertWarningDepth</c> (50) or
/// <c>AlertCriticalDepth</c> (100), and a dead-letter queue reaching <c>DlqMaxSize</c> (1000), are logged once per
/// level change as structured warnings, and lane pressure / idle around <c>PressureThreshold</c> (logged, and handed to
/// <c>onLaneEvent</c>, which the gate publishes as <see cref="LaneEvent"/>s). Dead letters are never
/// evicted: the broker policy bounds the queue, and this alert says so before it fills.
/// </summary>
internal sealed class DepthAlerts(SessionQueueConfig config, ILogger logger, Action<LaneEvent>? onLaneEvent = null)
{
    public enum Level
    {
        Normal,
        Warning,
        Critical,
    }

    readonly Level[] _lanes = new Level[SessionLanes.All.Count];
    readonly bool[] _deadLettersFull = new bool[SessionLanes.All.Count];
    readonly bool[] _pressured = new bool[SessionLanes.All.Count];

    public Level LevelOf(SessionLane lane) => _lanes[(int)lane];

    public void Lane(SessionLane lane, long depth)
    {
        var i = (int)lane;
        if (config.PressureThreshold is { } threshold)
        {
            if (!_pressured[i] && depth >= threshold)
            {
                _pressured[i] = true;
                Log.LanePressure(logger, lane.WireName(), depth, threshold);
                onLaneEvent?.Invoke(new LaneEvent { Event = LaneEvent.Pressure, Lane = lane, Depth = depth, Threshold = threshold });
            }
            else if (_pressured[i] && depth == 0)
            {
                _pressured[i] = false;
                Log.LaneIdle(logger, lane.WireName());
                onLaneEvent?.Invoke(new LaneEvent { Event = LaneEvent.Idle, Lane = lane, Depth = depth, Threshold = threshold });
            }
        }
        if (!config.EnableAlerts)
            return;
        var level = depth >= config.AlertCriticalDepth ? Level.Critical : depth >= config.AlertWarningDepth ? Level.Warning : Level.Normal;
        if (level == _lanes[i])
            return;
        _lanes[i] = level;
        Log.DepthAlert(logger, lane.WireName(), level.ToString().ToLowerInvariant(), depth, config.AlertWarningDepth, config.AlertCriticalDepth);
    }

    public void DeadLetters(SessionLane lane, long depth)
    {
        var i = (int)lane;
        var full = depth >= config.DlqMaxSize;
        if (full == _deadLettersFull[i])
            return;
        _deadLettersFull[i] = full;
        if (full)
            Log.DeadLettersFull(logger, lane.WireName(), depth, config.DlqMaxSize);
    }
}
