using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace LaneQueue.Tests.Unit;

public sealed class ConsumerMetricsTests
{
    [Theory]
    [InlineData(true, 1)]
    [InlineData(false, 0)]
    public void Enable_metrics_decides_whether_the_LaneQueue_meter_records(bool enabled, int expected)
    {
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var meters = services.GetRequiredService<IMeterFactory>();
        var options = Options.Create(new LaneQueueOptions { Queue = new SessionQueueConfig { EnableMetrics = enabled } });
        var metrics = new ConsumerMetrics(meters, new LaneActivity(), new LaneEndpoints(options),
            new LaneSlots(options, new RunningTasks(), Microsoft.Extensions.Logging.Abstractions.NullLogger<LaneSlots>.Instance), options);
        var recorded = 0;
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            // This test's meter only: consumer hosts of tests running beside it have "LaneQueue" meters of their own.
            if (instrument.Meter.Name == "LaneQueue" && instrument.Name == "commands.completed" && ReferenceEquals(instrument.Meter.Scope, meters))
                l.EnableMeasurementEvents(instrument);
        };
        listener.SetMeasurementEventCallback<long>((_, value, _, _) => recorded += (int)value);
        listener.Start();

        metrics.Count(ConsumerMetrics.Outcome.Completed, SessionLane.Query);

        Assert.Equal(expected, recorded);
        Assert.Equal(1, metrics.Total(ConsumerMetrics.Outcome.Completed, SessionLane.Query)); // the heartbeat's count either way
    }
}
