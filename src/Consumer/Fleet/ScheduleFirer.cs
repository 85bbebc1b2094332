using System.Diagnostics;
using LaneQueue.Contracts;
using LaneQueue.Producer;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;

namespace LaneQueue.Consumer;

/// <summary>
/// Fires the recurring schedules (<see cref="ScheduleTable"/>, folded by <see cref="FleetListener"/> from the lasting fleet
/// state) on the one consumer that is the fleet monitor (<see cref="FleetMonitor.IsMonitor"/>). Every
/// <see cref="TickInterval"/> it fires each due time that has come: a normal task with the id
/// <c>&lt;schedule&gt;:&lt;due&gt;</c> and that id as its <c>dedup_key</c>, published confirmed; then a
/// <see cref="ScheduleFiring"/> record to <see cref="BrokerNames.SchedulesFired"/>. When it becomes the monitor it first reads
/// that stream to its end (a marker) for the last firing per schedule, then fires what was missed: due times within
/// <see cref="TaskSchedules.DefaultGrace"/> each, older ones per the schedule's catch-up policy. A crash between the task and
/// its record makes the next monitor fire the same due time again: the same id and key, answered <c>duplicate</c>.
/// </summary>
internal sealed class ScheduleFirer(
    IOptions<LaneQueueOptions> options,
    ScheduleTable table,
    FleetMonitor monitor,
    BrokerPublisher publisher,
    ILogger<ScheduleFirer> logger,
    TimeProvider? time = null) : BackgroundService
{
    /// <summary>How often the monitor looks for due times.</summary>
    public static readonly TimeSpan TickInterval = TimeSpan.FromMilliseconds(100);

    readonly TimeProvider _time = time ?? TimeProvider.System;
    IConnection? _connection;

    /// <summary>Firings published by this process (for tests and metrics).</summary>
    public int Fired => Volatile.Read(ref _fired);

    int _fired;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        Dictionary<string, DateTimeOffset>? last = null;
        var election = -1;
        using var timer = new PeriodicTimer(TickInterval, _time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                if (!monitor.IsMonitor)
                {
                    last = null;
                    continue;
                }
                try
                {
                    if (last is null || monitor.Elections != election)
                    {
                        election = monitor.Elections;
                        var watch = Stopwatch.StartNew();
                        last = await ReadLastFiringsAsync(stoppingToken);
                        Log.SchedulesTakenOver(logger, last.Count, watch.ElapsedMilliseconds);
                    }
                    await FireDueAsync(last, stoppingToken);
                }
                catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
                {
                    Log.ScheduleFiringFailed(logger, ex.Message);
                    last = null; // read the stream again: what was confirmed is there
                    await Task.Delay(TimeSpan.FromSeconds(1), _time, stoppingToken);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    async Task FireDueAsync(Dictionary<string, DateTimeOffset> last, CancellationToken cancellationToken)
    {
        // ScheduleFirings looks at the table again before each firing (a pause or remove that arrived meanwhile stops the rest).
        foreach (var (schedule, due) in ScheduleFirings.Due(table, id => last.TryGetValue(id, out var fired) ? fired : null, _time.GetUtcNow()))
        {
            if (!monitor.IsMonitor)
                return;
            await FireAsync(schedule, due, cancellationToken);
            last[schedule.Id] = due;
        }
    }

    async Task FireAsync(TaskSchedule schedule, DateTimeOffset due, CancellationToken cancellationToken)
    {
        var task = ScheduleFirings.TaskFor(schedule, due, _time.GetUtcNow());
        // The task first, then the record: a crash in between fires this due time again (answered duplicate), never loses it.
        await publisher.RequeueAsync(task, FiringProperties(task), cancellationToken);
        var record = TaskJson.Serialize(ScheduleFirings.Record(task, schedule, due, options.Value.ConsumerName, _time.GetUtcNow()));
        await publisher.WithRecoveryAsync(channel => channel.BasicPublishAsync("", BrokerNames.SchedulesFired, mandatory: true,
            new BasicProperties { Persistent = true, ContentType = "application/json" }, record, cancellationToken).AsTask(), cancellationToken);
        Interlocked.Increment(ref _fired);
        Log.ScheduleFired(logger, schedule.Id, due.UtcDateTime.ToString("O", System.Globalization.CultureInfo.InvariantCulture), task.Id);
    }

    /// <summary>
    /// A firing's properties, with a token of its own in <see cref="BrokerNames.CopyHeader"/>: when a hand-over fires a due
    /// time again, the second copy (same task id and dedup key, another token) is answered <c>duplicate</c> by the key's
    /// claim on whichever consumer it reaches, not only by the ledger of the consumer that ran the first.
    /// </summary>
    internal static BasicProperties FiringProperties(ExternalTask task) =>
        TaskMessage.Properties(task, new Dictionary<string, object?> { [BrokerNames.CopyHeader] = Guid.NewGuid().ToString("N") });

    /// <summary>The last firing per schedule: <see cref="BrokerNames.SchedulesFired"/> read from its start to a marker.</summary>
    async Task<Dictionary<string, DateTimeOffset>> ReadLastFiringsAsync(CancellationToken cancellationToken)
    {
        _connection ??= await BrokerConnection.ConnectAsync(options.Value.RabbitMqUrl, $"{options.Value.ConsumerName}-schedules", cancellationToken);
        var firings = new Dictionary<string, ScheduleFiring>(StringComparer.Ordinal);
        await HistoryStream.ReadToEndAsync(_connection, "first", (body, _) => ScheduleReader.Fold(firings, body), TimeSpan.FromSeconds(30), cancellationToken,
            BrokerNames.SchedulesFired);
        return firings.ToDictionary(f => f.Key, f => f.Value.Due, StringComparer.Ordinal);
    }

    public override void Dispose()
    {
        _connection?.Dispose();
        base.Dispose();
    }
}
