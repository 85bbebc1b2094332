using System.Diagnostics.Metrics;
using LaneQueue.Contracts;
using LaneQueue.Producer;
using Microsoft.Extensions.Options;

namespace LaneQueue.Consumer;

/// <summary>
/// The consumer's metrics on the <c>LaneQueue</c> meter (the reference's names, tag <c>lane</c>), and the same counts
/// kept as totals for the fleet heartbeat.
/// </summary>
internal sealed class ConsumerMetrics
{
    public enum Outcome
    {
        Completed,
        Failed,
        Timeout,
        Retried,
        DeadLettered,
        Cancelled,
        Preempted,
    }

    readonly Counter<long>[] _counters;
    readonly long[,] _totals = new long[Enum.GetValues<Outcome>().Length, SessionLanes.All.Count];
    readonly Histogram<double> _latency;
    readonly Histogram<double> _wait;

    public ConsumerMetrics(IMeterFactory meters, LaneActivity activity, LaneEndpoints endpoints, LaneSlots slots, IOptions<LaneQueueOptions> options)
    {
        ArgumentNullException.ThrowIfNull(slots);
        ArgumentNullException.ThrowIfNull(endpoints);
        ArgumentNullException.ThrowIfNull(meters);
        ArgumentNullException.ThrowIfNull(options);
        // With Queue:EnableMetrics false the instruments hang off a meter nobody can listen to: nothing is recorded.
        var meter = options.Value.Queue.EnableMetrics ? meters.Create(LaneQueueTelemetry.Name) : new Meter(LaneQueueTelemetry.Name + ".disabled");
        _counters =
        [
            meter.CreateCounter<long>(LaneQueueTelemetry.Completed, "{task}", "Tasks that completed"),
            meter.CreateCounter<long>(LaneQueueTelemetry.Failed, "{task}", "Runs that failed (retried or dead-lettered)"),
            meter.CreateCounter<long>(LaneQueueTelemetry.Timeout, "{task}", "Runs that timed out"),
            meter.CreateCounter<long>(LaneQueueTelemetry.Retried, "{task}", "Tasks parked for a retry"),
            meter.CreateCounter<long>(LaneQueueTelemetry.DeadLettered, "{task}", "Tasks moved to a dead-letter queue"),
            meter.CreateCounter<long>(LaneQueueTelemetry.Cancelled, "{task}", "Tasks cancelled"),
            meter.CreateCounter<long>(LaneQueueTelemetry.Preemptions, "{task}", "Tasks that yielded to higher-lane work"),
        ];
        _latency = meter.CreateHistogram<double>(LaneQueueTelemetry.Latency, "ms", "Run time of a task");
        _wait = meter.CreateHistogram<double>(LaneQueueTelemetry.WaitTime, "ms", "Time from created_at to start");
        meter.CreateObservableGauge(LaneQueueTelemetry.QueueDepth, () =>
            SessionLanes.All.Select(lane => new Measurement<long>(Interlocked.Read(ref activity.Ready[(int)lane]), Lane(lane))), "{task}", "Ready tasks at the broker per lane");
        meter.CreateObservableGauge(LaneQueueTelemetry.QueueActive, () =>
            SessionLanes.All.Select(lane => new Measurement<long>(activity.Active(lane), Lane(lane))), "{task}", "Tasks running in this consumer per lane");
        meter.CreateObservableGauge(LaneQueueTelemetry.LaneWaiting, () =>
            SessionLanes.All.Select(lane => new Measurement<int>(slots.WaitingIn(lane), Lane(lane))), "{task}", "Deliveries of the lane held in this consumer, waiting for a slot");
        // 1 while an operator has the lane paused (the fleet command pause); the lane gate pauses no lane, it orders the slots.
        meter.CreateObservableGauge(LaneQueueTelemetry.LanePaused, () => SessionLanes.All.Select(lane =>
            new Measurement<int>(endpoints.IsPaused(lane) ? 1 : 0, Lane(lane), new("by", "operator"))),
            null, "Whether an operator has the lane paused (1) or not (0)");
    }

    static KeyValuePair<string, object?> Lane(SessionLane lane) => new("lane", lane.WireName());

    public void Count(Outcome outcome, SessionLane lane)
    {
        _counters[(int)outcome].Add(1, Lane(lane));
        Interlocked.Increment(ref _totals[(int)outcome, (int)lane]);
    }

    public long Total(Outcome outcome, SessionLane lane) => Interlocked.Read(ref _totals[(int)outcome, (int)lane]);

    public void Ran(SessionLane lane, TimeSpan waited, TimeSpan ran)
    {
        _wait.Record(waited.TotalMilliseconds, Lane(lane));
        _latency.Record(ran.TotalMilliseconds, Lane(lane));
    }
}
