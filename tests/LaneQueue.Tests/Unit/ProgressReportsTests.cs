using System.Text.Json;
using Microsoft.Extensions.Time.Testing;

namespace LaneQueue.Tests.Unit;

/// <summary>The per-run progress throttle on fake time: one event per 100 ms at most, the latest report always sent.</summary>
public class ProgressReportsTests
{
    sealed class Sink
    {
        readonly List<double> _sent = [];

        public Task Publish(JsonElement value)
        {
            lock (_sent)
                _sent.Add(value.GetProperty("percent").GetDouble());
            return Task.CompletedTask;
        }

        public double[] Sent
        {
            get
            {
                lock (_sent)
                    return [.. _sent];
            }
        }
    }

    static JsonElement At(double percent) => ProgressReports.Percent(percent, null);

    static async Task Until(Func<bool> condition)
    {
        for (var i = 0; i < 500 && !condition(); i++)
            await Task.Delay(10);
        Assert.True(condition());
    }

    [Fact]
    public async Task The_first_report_goes_at_once_and_reports_inside_the_interval_collapse_to_the_latest()
    {
        var time = new FakeTimeProvider();
        var sink = new Sink();
        await using var reports = new ProgressReports(sink.Publish, time);

        await reports.ReportAsync(At(1));
        Assert.Equal([1], sink.Sent);

        for (var p = 2; p <= 50; p++)
            await reports.ReportAsync(At(p)); // all inside the same 100 ms
        Assert.Equal([1], sink.Sent);

        time.Advance(TimeSpan.FromMilliseconds(99));
        await Task.Delay(50);
        Assert.Equal([1], sink.Sent);
        time.Advance(TimeSpan.FromMilliseconds(1));
        await Until(() => sink.Sent.Length == 2);
        Assert.Equal([1, 50], sink.Sent);
    }

    [Fact]
    public async Task Ten_thousand_reports_a_second_send_at_most_ten_a_second_and_the_last_one()
    {
        var time = new FakeTimeProvider();
        var sink = new Sink();
        var reports = new ProgressReports(sink.Publish, time);
        // One simulated second: 10,000 reports, 0.1 ms apart.
        for (var i = 1; i <= 10_000; i++)
        {
            await reports.ReportAsync(At(i / 100.0));
            if (i % 10 == 0)
            {
                time.Advance(TimeSpan.FromMilliseconds(1));
                await Task.Yield();
            }
        }
        await reports.DisposeAsync();

        var sent = sink.Sent;
        Assert.InRange(sent.Length, 5, 11); // 10 intervals in the second, +1 for the flush at the end
        Assert.Equal(100, sent[^1]);          // the latest report is never lost
        Assert.Equal(sent.Order(), sent);      // in the order reported
    }

    [Fact]
    public async Task Ending_the_run_sends_the_waiting_report_at_once_and_ignores_later_ones()
    {
        var time = new FakeTimeProvider();
        var sink = new Sink();
        var reports = new ProgressReports(sink.Publish, time);
        await reports.ReportAsync(At(10));
        await reports.ReportAsync(At(90)); // waits for the interval
        await reports.DisposeAsync();      // no time passes: sent now
        Assert.Equal([10, 90], sink.Sent);

        await reports.ReportAsync(At(95));
        time.Advance(TimeSpan.FromSeconds(1));
        await Task.Delay(50);
        Assert.Equal([10, 90], sink.Sent);
    }

    [Fact]
    public async Task A_failing_publish_does_not_fail_the_handler()
    {
        var time = new FakeTimeProvider();
        var calls = 0;
        await using var reports = new ProgressReports(_ =>
        {
            calls++;
            throw new InvalidOperationException("broker down");
        }, time);
        await reports.ReportAsync(At(5));
        Assert.Equal(1, calls);
    }

    [Fact]
    public async Task Reports_are_checked_and_name_the_field()
    {
        var tooBig = Assert.Throws<ArgumentException>(() => ProgressReports.Json(new { message = new string('x', TaskEvent.ProgressMaxBytes) }));
        Assert.StartsWith("progress:", tooBig.Message);
        Assert.Contains("at most 4096", tooBig.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => ProgressReports.Percent(101, null));
        Assert.Throws<ArgumentOutOfRangeException>(() => ProgressReports.Percent(double.NaN, null));
        Assert.Throws<ArgumentOutOfRangeException>(() => ProgressReports.Percent(-1, null));
        Assert.Equal("""{"percent":40,"message":"half"}""", ProgressReports.Percent(40, "half").GetRawText());
        Assert.Equal("""{"percent":40}""", ProgressReports.Percent(40, null).GetRawText());
        Assert.Equal("""{"rows":3}""", ProgressReports.Json(new { Rows = 3 }).GetRawText()); // the wire's camelCase

        // A context built by hand (a handler's own unit test) checks the value and publishes nowhere.
        var context = new TaskContext { Task = ExternalTask.Create("t", SessionLane.Generate, new { }), ConsumerName = "test" };
        await context.ReportProgressAsync(50, "half");
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => context.ReportProgressAsync(200));
    }
}
