using System.Reflection;
using LaneQueue.Contracts;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace LaneQueue.Consumer;

/// <summary>Publishes this consumer's <see cref="ConsumerHeartbeat"/> every <c>HeartbeatIntervalMs</c> (fleet stats are built from them).</summary>
internal sealed class FleetHeartbeat(
    IOptions<LaneQueueOptions> options,
    BrokerPublisher publisher,
    LaneActivity activity,
    LaneEndpoints endpoints,
    LaneModes modes,
    LaneSlots slots,
    ExternalTasks external,
    ConsumerMetrics metrics) : BackgroundService
{
    /// <summary>This library's version, without the source revision the SDK may append after a '+'.</summary>
    static readonly string Version = (typeof(FleetHeartbeat).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "").Split('+')[0];

    readonly DateTimeOffset _startedAt = DateTimeOffset.UtcNow;

    public ConsumerHeartbeat Current()
    {
        var settings = options.Value;
        return new ConsumerHeartbeat
        {
            Consumer = settings.ConsumerName,
            Topology = settings.Topology.ToString(),
            Version = Version,
            StartedAt = _startedAt,
            IntervalMs = settings.HeartbeatIntervalMs,
            SlotBudget = slots.Capacity,
            SlotsInUse = slots.InUse,
            ExternalPending = external.Pending,
            ExternalTasks = external.PendingTasks,
            Lanes = SessionLanes.All.Select(lane => new LaneHeartbeat
            {
                Lane = lane,
                Active = activity.Active(lane),
                Waiting = slots.WaitingIn(lane),
                MaxConcurrency = settings.Topology == LaneTopology.QueuePerLane ? settings.Queue.MaxConcurrency(lane) : settings.SlotBudget,
                HandlerMode = modes.For(lane).Mode.ToString().ToLowerInvariant(),
                Paused = endpoints.IsPaused(lane),
                PausedReason = endpoints.PauseReason(lane),
                Completed = metrics.Total(ConsumerMetrics.Outcome.Completed, lane),
                Failed = metrics.Total(ConsumerMetrics.Outcome.Failed, lane) + metrics.Total(ConsumerMetrics.Outcome.Timeout, lane),
                DeadLettered = metrics.Total(ConsumerMetrics.Outcome.DeadLettered, lane),
                Retried = metrics.Total(ConsumerMetrics.Outcome.Retried, lane),
                Cancelled = metrics.Total(ConsumerMetrics.Outcome.Cancelled, lane),
                Sessions = [.. slots.SessionsIn(lane, LaneHeartbeat.MaxSessions)
                    .Select(s => new SessionHeartbeat { Session = s.Session.Length == 0 ? null : s.Session, Running = s.Running, Waiting = s.Waiting })],
                SessionLimit = settings.SessionLimits.GetValueOrDefault(lane) is > 0 and var limit ? limit : null,
                SessionShards = settings.ShardsOf(lane),
            }).ToList(),
        };
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(options.Value.HeartbeatIntervalMs));
        do
        {
            try
            {
                await publisher.PublishAsync(BrokerNames.HeartbeatsExchange, "", TaskJson.Serialize(Current()), stoppingToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // The broker is away; the next beat tries again (missing beats make stats drop this consumer, as they should).
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }
}
