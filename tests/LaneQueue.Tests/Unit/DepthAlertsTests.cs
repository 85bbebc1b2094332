using LaneQueue.Consumer;
using LaneQueue.Contracts;
using Microsoft.Extensions.Logging;

namespace LaneQueue.Tests.Unit;

public class DepthAlertsTests
{
    sealed class ListLogger : ILogger
    {
        public List<(LogLevel Level, EventId Id, string Message)> Entries { get; } = [];

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            Entries.Add((logLevel, eventId, formatter(state, exception)));
    }

    [Fact]
    public void Depth_alerts_fire_once_per_level_change_at_50_and_100()
    {
        var log = new ListLogger();
        var alerts = new DepthAlerts(new SessionQueueConfig().WithLaneFeatures(), log);
        foreach (var depth in new long[] { 10, 49, 50, 60, 99, 100, 150, 100, 70, 20, 0 })
            alerts.Lane(SessionLane.Query, depth);
        Assert.Equal(["warning", "critical", "warning", "normal"], log.Entries.Where(e => e.Id.Id == 1105).Select(e => e.Message.Split(' ')[6]));
        Assert.All(log.Entries, e => Assert.Equal(LogLevel.Warning, e.Level));
    }

    [Fact]
    public void No_depth_alerts_unless_enabled_but_pressure_and_idle_follow_the_threshold()
    {
        var log = new ListLogger();
        var alerts = new DepthAlerts(new SessionQueueConfig { PressureThreshold = 20 }, log);
        foreach (var depth in new long[] { 5, 500, 25, 3, 0, 30 })
            alerts.Lane(SessionLane.Generate, depth);
        Assert.Equal([1103, 1104, 1103], log.Entries.Select(e => e.Id.Id));
        Assert.Contains("Lane generate pressure: 500 ready", log.Entries[0].Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_full_dead_letter_queue_is_reported_not_evicted()
    {
        var log = new ListLogger();
        var alerts = new DepthAlerts(new SessionQueueConfig { DlqMaxSize = 3 }, log);
        foreach (var depth in new long[] { 1, 3, 4, 2, 5 })
            alerts.DeadLetters(SessionLane.Execute, depth);
        Assert.Equal(2, log.Entries.Count(e => e.Id.Id == 1106));
        Assert.Contains("nothing is evicted", log.Entries[0].Message, StringComparison.Ordinal);
    }
}
