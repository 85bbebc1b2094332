using LaneQueue.Contracts;

namespace LaneQueue.Consumer;

/// <summary>What the gate knows at one check.</summary>
/// <param name="Ready">Ready (not yet delivered) messages per lane at the broker, indexed by lane priority.</param>
/// <param name="LastStart">When this process last started a task of each lane.</param>
internal sealed record GateSnapshot(long[] Ready, DateTimeOffset?[] LastStart, DateTimeOffset Now);

/// <summary>A lane to pause or resume, and why; <paramref name="Boosted"/>: a resume by aging (the lane stays open until it starts a task).</summary>
internal sealed record GateChange(SessionLane Lane, bool Pause, string Reason, bool Boosted = false);

/// <summary>
/// The lane gate's decisions, with no I/O: a lane is held while a higher lane has at least
/// <see cref="GateOptions.PauseAtReady"/> ready messages; it resumes after
/// <see cref="GateOptions.ResumeAfterClearChecks"/> clear checks in a row (hysteresis). A held lane with work of its
/// own ages: <see cref="PriorityBoost"/> raises it by some levels as its deadline nears, and past the deadline it is
/// admitted whatever waits above it. A lane admitted by its boost stays open until it starts a task, which
/// restarts its clock.
/// </summary>
internal sealed class GatePolicy(GateOptions options, PriorityBoost boost)
{
    readonly bool[] _paused = new bool[SessionLanes.All.Count];
    readonly int[] _clearChecks = new int[SessionLanes.All.Count];
    readonly DateTimeOffset?[] _waitingSince = new DateTimeOffset?[SessionLanes.All.Count];
    readonly DateTimeOffset?[] _admittedAt = new DateTimeOffset?[SessionLanes.All.Count];

    public bool IsPaused(SessionLane lane) => _paused[(int)lane];

    /// <summary>
    /// Boost levels the lane has earned by waiting: held back while it has ready work of its own, counted from when that
    /// began or from its last task start, whichever is later (0 when it is not waiting).
    /// </summary>
    public int BoostLevels(SessionLane lane, GateSnapshot snapshot)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        var i = (int)lane;
        if (_waitingSince[i] is not { } waiting || snapshot.Ready[i] == 0)
            return 0;
        var since = snapshot.LastStart[i] is { } started && started > waiting ? started : waiting;
        return boost.LevelsFor(snapshot.Now - since);
    }

    public IReadOnlyList<GateChange> Evaluate(GateSnapshot snapshot)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        var changes = new List<GateChange>();
        foreach (var lane in SessionLanes.All)
        {
            var i = (int)lane;
            if (!_paused[i] || snapshot.Ready[i] == 0)
                _waitingSince[i] = null;
            else
                _waitingSince[i] ??= snapshot.Now;
            var levels = BoostLevels(lane, snapshot);
            if (_admittedAt[i] is { } admitted && (snapshot.Ready[i] == 0 || snapshot.LastStart[i] > admitted))
                _admittedAt[i] = null;
            var blocker = _admittedAt[i] is null ? HigherLaneWithWork(lane, snapshot, levels) : null;
            if (blocker is { } higher)
            {
                _clearChecks[i] = 0;
                if (!_paused[i])
                {
                    _paused[i] = true;
                    if (snapshot.Ready[i] > 0)
                        _waitingSince[i] = snapshot.Now;
                    changes.Add(new GateChange(lane, true, $"lane {higher.WireName()} has {snapshot.Ready[(int)higher]} ready"));
                }
            }
            else if (_paused[i])
            {
                // Drained higher lanes wait out the hysteresis; a boost admits the lane at once.
                var boosted = levels > 0;
                if (boosted || ++_clearChecks[i] >= options.ResumeAfterClearChecks)
                {
                    _paused[i] = false;
                    _clearChecks[i] = 0;
                    _admittedAt[i] = boosted ? snapshot.Now : null;
                    changes.Add(new GateChange(lane, false,
                        levels == PriorityBoost.TopPriority ? "boost deadline reached" : boosted ? $"boosted by {levels} levels" : "higher lanes drained", boosted));
                }
            }
            if (!_paused[i])
                _waitingSince[i] = null;
        }
        return changes;
    }

    SessionLane? HigherLaneWithWork(SessionLane lane, GateSnapshot snapshot, int boostLevels)
    {
        if (boostLevels == PriorityBoost.TopPriority)
            return null;
        var effective = lane.Priority() - boostLevels;
        foreach (var higher in SessionLanes.All)
        {
            if (higher.Priority() >= lane.Priority())
                break;
            if (higher.Priority() < effective && snapshot.Ready[(int)higher] >= options.PauseAtReady)
                return higher;
        }
        return null;
    }
}
