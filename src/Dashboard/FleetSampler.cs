using System.Collections.Concurrent;
using System.Text.Json.Serialization;
using LaneQueue.Contracts;
using LaneQueue.Producer;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;

namespace LaneQueue.Dashboard;

/// <summary>One lane on the dashboard: the fleet's stats plus what the dashboard keeps over time.</summary>
internal sealed record LaneView(
    [property: JsonPropertyName("stats")] LaneStats Stats,
    [property: JsonPropertyName("rate")] double FinishedPerSecond,
    [property: JsonPropertyName("depth")] IReadOnlyList<long> Depth,
    [property: JsonPropertyName("oldest_wait_s")] double? OldestWaitSeconds = null,
    [property: JsonPropertyName("sessions")] LaneSessionsView? Sessions = null);

/// <summary>
/// A lane's sessions across the live consumers: each session's running and waiting tasks summed over their heartbeats (each
/// heartbeat lists its consumer's busiest <see cref="LaneHeartbeat.MaxSessions"/>), the busiest
/// <see cref="LaneHeartbeat.MaxSessions"/> of them; and the per-session limits and shard counts the consumers report
/// (one value when they agree; several when they differ; none without a consumer).
/// </summary>
internal sealed record LaneSessionsView(
    [property: JsonPropertyName("top")] IReadOnlyList<SessionHeartbeat> Top,
    [property: JsonPropertyName("limits")] IReadOnlyList<int?> Limits,
    [property: JsonPropertyName("shards")] IReadOnlyList<int> Shards)
{
    public static LaneSessionsView Of(SessionLane lane, IEnumerable<ConsumerHeartbeat> consumers)
    {
        var mine = consumers.Select(c => c.Lanes.FirstOrDefault(l => l.Lane == lane)).OfType<LaneHeartbeat>().ToList();
        var top = mine.SelectMany(l => l.Sessions)
            .GroupBy(s => s.Session ?? "", StringComparer.Ordinal)
            .Select(g => new SessionHeartbeat { Session = g.Key.Length == 0 ? null : g.Key, Running = g.Sum(s => s.Running), Waiting = g.Sum(s => s.Waiting) })
            .OrderByDescending(s => s.Running + s.Waiting).ThenBy(s => s.Session ?? "", StringComparer.Ordinal)
            .Take(LaneHeartbeat.MaxSessions)
            .ToList();
        return new LaneSessionsView(top, [.. mine.Select(l => l.SessionLimit).Distinct().Order()], [.. mine.Select(l => l.SessionShards).Distinct().Order()]);
    }
}

/// <summary>One consumer on the dashboard: its latest heartbeat and how long ago it was heard.</summary>
internal sealed record ConsumerView(
    [property: JsonPropertyName("heartbeat")] ConsumerHeartbeat Heartbeat,
    [property: JsonPropertyName("heard_ms_ago")] long HeardMsAgo);

/// <summary>What the pages show: taken every <see cref="LaneQueueDashboardOptions.SampleInterval"/>.</summary>
internal sealed record DashboardSnapshot(
    [property: JsonPropertyName("at")] DateTimeOffset At,
    [property: JsonPropertyName("lanes")] IReadOnlyList<LaneView> Lanes,
    [property: JsonPropertyName("consumers")] IReadOnlyList<ConsumerView> Consumers,
    [property: JsonPropertyName("external_pending")] int ExternalPending,
    [property: JsonPropertyName("external_tasks")] IReadOnlyList<PendingExternalTask> ExternalTasks,
    [property: JsonPropertyName("error")] string? Error = null);

/// <summary>
/// Listens to the consumers' heartbeats all the time (a consumer silent for three of its intervals drops out) and, every
/// sample interval, reads the lane depths (passive declares: messages are never touched) into a
/// <see cref="DashboardSnapshot"/> with a depth history per lane and a finish rate.
/// </summary>
internal sealed partial class FleetSampler(HostedProducer producer, IOptions<LaneQueueDashboardOptions> options, IOptions<ProducerOptions> broker,
    ILogger<FleetSampler> logger) : BackgroundService
{
    readonly QueueHeads? _heads = QueueHeads.For(options.Value, broker.Value);

    /// <summary>The window the finish rate is measured over.</summary>
    static readonly TimeSpan RateWindow = TimeSpan.FromSeconds(10);

    readonly ConcurrentDictionary<string, (ConsumerHeartbeat Beat, DateTimeOffset Heard)> _beats = new(StringComparer.Ordinal);
    readonly Dictionary<string, Queue<long>> _depth = new(StringComparer.Ordinal);
    readonly Dictionary<string, Queue<(DateTimeOffset At, long Finished)>> _finished = new(StringComparer.Ordinal);
    readonly TaskCompletionSource _first = new(TaskCreationOptions.RunContinuationsAsynchronously);
    volatile DashboardSnapshot? _latest;

    /// <summary>The latest snapshot; waits (up to <paramref name="timeout"/>) for the first one.</summary>
    public async Task<DashboardSnapshot> LatestAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        await _first.Task.WaitAsync(timeout, cancellationToken);
        return _latest!;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var settings = options.Value;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                var connection = (await producer.ConnectedAsync(stoppingToken)).Connection;
                await using var channel = await ListenAsync(connection, stoppingToken);
                using var timer = new PeriodicTimer(settings.SampleInterval);
                do
                {
                    await SampleAsync(connection, settings, stoppingToken);
                }
                while (await timer.WaitForNextTickAsync(stoppingToken));
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                LogSampleFailed(logger, ex);
                _latest = (_latest ?? new DashboardSnapshot(DateTimeOffset.UtcNow, [], [], 0, [])) with { Error = ex.Message };
                _first.TrySetResult();
                await Task.Delay(settings.SampleInterval * 2, stoppingToken);
            }
        }
    }

    Task<IChannel> ListenAsync(IConnection connection, CancellationToken cancellationToken) =>
        FleetStats.ListenToHeartbeatsAsync(connection, beat => _beats[beat.Consumer] = (beat, DateTimeOffset.UtcNow), cancellationToken);

    async Task SampleAsync(IConnection connection, LaneQueueDashboardOptions settings, CancellationToken cancellationToken)
    {
        var now = DateTimeOffset.UtcNow;
        foreach (var (name, (beat, heard)) in _beats)
        {
            if (now - heard > TimeSpan.FromMilliseconds(3 * Math.Max(beat.IntervalMs, 250)))
                _beats.TryRemove(name, out _);
        }
        var live = _beats.Values.ToList();
        var stats = await FleetStats.BuildAsync(connection, live.Select(b => b.Beat), cancellationToken);
        var waits = await OldestWaitsAsync(now, cancellationToken);
        var lanes = stats.Lanes.Select(lane =>
        {
            var which = SessionLanes.TryParse(lane.Lane, out var parsed) ? parsed : null;
            return new LaneView(lane, Rate(lane, now), Depth(lane, settings.DepthSamples),
                which is { } known ? waits?.GetValueOrDefault(BrokerNames.LaneQueue(known)) : null,
                which is { } inLane ? LaneSessionsView.Of(inLane, live.Select(b => b.Beat)) : null);
        }).ToList();
        var consumers = live.OrderBy(b => b.Beat.Consumer, StringComparer.Ordinal)
            .Select(b => new ConsumerView(b.Beat, (long)(now - b.Heard).TotalMilliseconds)).ToList();
        _latest = new DashboardSnapshot(now, lanes, consumers, stats.ExternalPending, FleetStats.PendingExternal(live.Select(b => b.Beat)));
        _first.TrySetResult();
    }

    /// <summary>Each queue's oldest wait, or null without a management URL or when the management API does not answer.</summary>
    async Task<Dictionary<string, double?>?> OldestWaitsAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (_heads is null)
            return null;
        try
        {
            return await _heads.WaitsAsync(now, cancellationToken);
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or System.Text.Json.JsonException && !cancellationToken.IsCancellationRequested)
        {
            LogManagementFailed(logger, ex.Message);
            return null;
        }
    }

    IReadOnlyList<long> Depth(LaneStats lane, int samples)
    {
        if (!_depth.TryGetValue(lane.Lane, out var depth))
            _depth[lane.Lane] = depth = new Queue<long>();
        depth.Enqueue(lane.Pending ?? 0);
        while (depth.Count > samples)
            depth.Dequeue();
        return depth.ToArray();
    }

    /// <summary>Tasks finished (completed, failed, dead-lettered) per second over the last <see cref="RateWindow"/>.</summary>
    double Rate(LaneStats lane, DateTimeOffset now)
    {
        if (!_finished.TryGetValue(lane.Lane, out var points))
            _finished[lane.Lane] = points = new Queue<(DateTimeOffset, long)>();
        points.Enqueue((now, lane.Completed + lane.Failed + lane.DeadLettered));
        while (points.Count > 2 && now - points.Peek().At > RateWindow)
            points.Dequeue();
        var (firstAt, firstCount) = points.Peek();
        var seconds = (now - firstAt).TotalSeconds;
        // Counters restart with a consumer: a drop is not negative work.
        return seconds <= 0 ? 0 : Math.Round(Math.Max(0, lane.Completed + lane.Failed + lane.DeadLettered - firstCount) / seconds, 2);
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Warning, Message = "LaneQueue dashboard could not read the fleet; trying again")]
    static partial void LogSampleFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 2, Level = LogLevel.Warning, Message = "LaneQueue dashboard could not read the lanes' oldest wait from the management API: {Error}")]
    static partial void LogManagementFailed(ILogger logger, string error);
}
