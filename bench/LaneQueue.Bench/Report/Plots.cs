using ScottPlot;

namespace LaneQueue.Bench.Report;

/// <summary>The PNG plots (ScottPlot 5).</summary>
public static class Plots
{
    static readonly Color[] Palette = [Colors.SteelBlue, Colors.DarkOrange, Colors.FireBrick];

    /// <summary>Query wait p50 / p99 / max per variant on a log scale.</summary>
    public static bool Preemption(RunResult run, string path)
    {
        var scenario = run.Scenarios.FirstOrDefault(s => s.Id == "preemption");
        if (scenario is null || scenario.Rows.Count == 0)
            return false;
        var plot = new Plot();
        string[] stats = ["p50_ms", "p99_ms", "max_ms"];
        string[] names = ["p50", "p99", "max"];
        var bars = new List<Bar>();
        var ticks = new List<Tick>();
        for (var v = 0; v < scenario.Rows.Count; v++)
        {
            var row = scenario.Rows[v];
            for (var s = 0; s < stats.Length; s++)
            {
                var ms = Convert.ToDouble(row[stats[s]], System.Globalization.CultureInfo.InvariantCulture);
                bars.Add(new Bar
                {
                    Position = v * 4 + s,
                    Value = Math.Log10(Math.Max(ms, 0.1)),
                    ValueBase = -1,
                    FillColor = Palette[s],
                    Label = ms >= 1000 ? $"{ms / 1000:0.0} s" : $"{ms:0} ms",
                });
            }
            ticks.Add(new Tick(v * 4 + 1, Wrap((string)row["variant"]!), true));
        }
        var barPlot = plot.Add.Bars(bars);
        barPlot.ValueLabelStyle.FontSize = 11;
        for (var s = 0; s < names.Length; s++)
            plot.Legend.ManualItems.Add(new LegendItem { LabelText = names[s], FillColor = Palette[s] });
        plot.ShowLegend(Alignment.UpperLeft);
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(ticks.ToArray());
        plot.Axes.Left.TickGenerator = LogTicks(-1, 6);
        plot.Axes.SetLimits(-1, scenario.Rows.Count * 4 - 1, -1, 5.5);
        plot.Title($"Query wait while a fleet of 2 is busy on a generate backlog ({run.Mode} run, {run.Machine["date"]})");
        plot.YLabel("submit → start (log scale)");
        plot.SavePng(path, 1200, 620);
        return true;
    }

    /// <summary>Throughput per number of consumer processes, with the ideal (slots x 1000 / handler ms).</summary>
    public static bool Scale(RunResult run, string path)
    {
        var scenario = run.Scenarios.FirstOrDefault(s => s.Id == "scale");
        if (scenario is null || scenario.Rows.Count == 0)
            return false;
        var plot = new Plot();
        var bars = new List<Bar>();
        var ticks = new List<Tick>();
        for (var i = 0; i < scenario.Rows.Count; i++)
        {
            var row = scenario.Rows[i];
            var measured = Convert.ToDouble(row["tasks_per_s"], System.Globalization.CultureInfo.InvariantCulture);
            var ideal = Convert.ToDouble(row["ideal_per_s"], System.Globalization.CultureInfo.InvariantCulture);
            bars.Add(new Bar { Position = i * 3, Value = measured, FillColor = Palette[0], Label = $"{measured:0}" });
            bars.Add(new Bar { Position = i * 3 + 1, Value = ideal, FillColor = Colors.LightGray, Label = $"{ideal:0}" });
            ticks.Add(new Tick(i * 3 + 0.5, $"{row["consumers"]} consumer process(es)", true));
        }
        plot.Add.Bars(bars);
        plot.Legend.ManualItems.Add(new LegendItem { LabelText = "measured", FillColor = Palette[0] });
        plot.Legend.ManualItems.Add(new LegendItem { LabelText = "ideal (slots × 1000 / 20 ms)", FillColor = Colors.LightGray });
        plot.ShowLegend(Alignment.UpperLeft);
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(ticks.ToArray());
        plot.Axes.Margins(bottom: 0, top: 0.15);
        plot.Title($"Horizontal scale, sleep 20 ms handler ({run.Mode} run)");
        plot.YLabel("tasks / s");
        plot.SavePng(path, 900, 500);
        return true;
    }

    /// <summary>Generate waits under a query flood versus the boost deadline.</summary>
    public static bool Aging(RunResult run, string path)
    {
        var scenario = run.Scenarios.FirstOrDefault(s => s.Id == "aging");
        if (scenario is null || scenario.Samples.Count == 0)
            return false;
        var plot = new Plot();
        var ticks = new List<Tick>();
        var i = 0;
        var offset = 0;
        var bars = new List<Bar>();
        foreach (var (variant, waits) in scenario.Samples)
        {
            var gaveUp = scenario.Rows.Any(r => (string?)r["variant"] == variant && ((string?)r["waits"] ?? "").Contains("not started", StringComparison.Ordinal));
            for (var k = 0; k < waits.Count; k++)
            {
                bars.Add(new Bar
                {
                    Position = offset + k,
                    Value = waits[k] / 1000.0,
                    FillColor = Palette[i % Palette.Length],
                    Label = gaveUp && k == waits.Count - 1 ? $"probe {k + 1}: not started in {waits[k] / 1000:0.0} s"
                        : waits[k] >= 1000 ? $"probe {k + 1}: {waits[k] / 1000:0.0} s" : $"probe {k + 1}: {waits[k]:0} ms",
                });
            }
            ticks.Add(new Tick(offset + (waits.Count - 1) / 2.0, Wrap(variant), true));
            offset += waits.Count + 1;
            i++;
        }
        plot.Add.Bars(bars);
        var deadline = Convert.ToDouble(scenario.Rows.First()["deadline_ms"], System.Globalization.CultureInfo.InvariantCulture) / 1000.0;
        var line = plot.Add.HorizontalLine(deadline);
        line.LineColor = Colors.Black;
        line.LinePattern = LinePattern.Dashed;
        line.LegendText = "boost deadline";
        plot.ShowLegend(Alignment.UpperLeft);
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(ticks.ToArray());
        plot.Axes.Margins(bottom: 0, top: 0.2);
        plot.Title($"Generate probes under a continuous query flood ({run.Mode} run)");
        plot.YLabel("generate wait (s)");
        plot.SavePng(path, 900, 500);
        return true;
    }

    static ScottPlot.TickGenerators.NumericManual LogTicks(int from, int to)
    {
        var ticks = new ScottPlot.TickGenerators.NumericManual();
        for (var e = from; e <= to; e++)
        {
            var ms = Math.Pow(10, e);
            ticks.AddMajor(e, ms >= 1000 ? $"{ms / 1000:0.#} s" : $"{ms:0.#} ms");
            for (var m = 2; m < 10; m++)
                ticks.AddMinor(e + Math.Log10(m));
        }
        return ticks;
    }

    static string Wrap(string text) => text.Replace(", ", "\n", StringComparison.Ordinal);
}
