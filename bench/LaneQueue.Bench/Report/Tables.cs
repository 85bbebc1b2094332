using System.Globalization;
using System.Text;

namespace LaneQueue.Bench.Report;

/// <summary>The result tables, as fixed-width text for the console and as Markdown.</summary>
public static class Tables
{
    public static string Format(object? value) => value switch
    {
        null => "",
        double d when double.IsNaN(d) => "n/a",
        double d when Math.Abs(d) >= 100 => d.ToString("0", CultureInfo.InvariantCulture),
        double d => d.ToString("0.##", CultureInfo.InvariantCulture),
        float f => ((double)f).ToString("0.##", CultureInfo.InvariantCulture),
        bool b => b ? "yes" : "no",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };

    static string Header(Column column) => column.Unit is { } unit ? $"{column.Header} ({unit})" : column.Header;

    public static string Console(RunResult run)
    {
        var text = new StringBuilder();
        foreach (var scenario in run.Scenarios)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"== {scenario.Title} ({scenario.Seconds:0.0} s)");
            if (scenario.Error is not null)
                text.AppendLine(CultureInfo.InvariantCulture, $"   FAILED: {scenario.Error}");
            var columns = scenario.Columns;
            var cells = scenario.Rows.Select(r => columns.Select(c => Format(r.GetValueOrDefault(c.Key))).ToArray()).ToList();
            var widths = columns.Select((c, i) => Math.Min(60, Math.Max(Header(c).Length, cells.Select(r => r[i].Length).DefaultIfEmpty(0).Max()))).ToArray();
            if (columns.Count > 0)
            {
                text.AppendLine(string.Join("  ", columns.Select((c, i) => Fit(Header(c), widths[i]))));
                text.AppendLine(string.Join("  ", widths.Select(w => new string('-', w))));
                foreach (var row in cells)
                    text.AppendLine(string.Join("  ", row.Select((v, i) => Fit(v, widths[i]))));
            }
            foreach (var verdict in scenario.Verdicts)
                text.AppendLine(CultureInfo.InvariantCulture, $"   [{(verdict.Met ? "met" : "MISSED")}] {verdict.Target}: {verdict.Detail}");
            text.AppendLine();
        }
        return text.ToString();
    }

    static string Fit(string value, int width) => value.Length > width ? value[..(width - 1)] + "~" : value.PadRight(width);

    public static string Markdown(RunResult run, IEnumerable<string> images)
    {
        var md = new StringBuilder();
        md.AppendLine(CultureInfo.InvariantCulture, $"# LaneQueue benchmark results ({run.Mode} run)");
        md.AppendLine();
        md.AppendLine("Produced by `bash scripts/bench.sh" + (run.Mode == "quick" ? " --quick" : "") + "`; see `bench/README.md` for what each scenario does and what the columns mean.");
        md.AppendLine();
        md.AppendLine("## Machine");
        md.AppendLine();
        md.AppendLine("| | |");
        md.AppendLine("|---|---|");
        foreach (var (key, value) in run.Machine)
            md.AppendLine(CultureInfo.InvariantCulture, $"| {key} | {Escape(value)} |");
        md.AppendLine(CultureInfo.InvariantCulture, $"| run time | {run.TotalSeconds:0.0} s |");
        md.AppendLine();
        md.AppendLine("The machine is shared (other engineers' tests run at the same time), so absolute numbers are noisy; every variant of a scenario ran in the same run, one after the other, so compare within a table.");
        md.AppendLine();
        foreach (var scenario in run.Scenarios)
        {
            md.AppendLine(CultureInfo.InvariantCulture, $"## {scenario.Title}");
            md.AppendLine();
            md.AppendLine(scenario.What);
            md.AppendLine();
            if (scenario.Error is not null)
            {
                md.AppendLine(CultureInfo.InvariantCulture, $"**Failed:** {Escape(scenario.Error)}");
                md.AppendLine();
            }
            if (scenario.Columns.Count > 0 && scenario.Rows.Count > 0)
            {
                md.AppendLine("| " + string.Join(" | ", scenario.Columns.Select(Header)) + " |");
                md.AppendLine("|" + string.Join("|", scenario.Columns.Select(_ => "---")) + "|");
                foreach (var row in scenario.Rows)
                    md.AppendLine("| " + string.Join(" | ", scenario.Columns.Select(c => Escape(Format(row.GetValueOrDefault(c.Key))))) + " |");
                md.AppendLine();
            }
            foreach (var verdict in scenario.Verdicts)
                md.AppendLine(CultureInfo.InvariantCulture, $"- {(verdict.Met ? "✅ met" : "❌ **missed**")}: {Escape(verdict.Target)} — {Escape(verdict.Detail)}");
            if (scenario.Verdicts.Count > 0)
                md.AppendLine();
            foreach (var note in scenario.Notes)
                md.AppendLine(CultureInfo.InvariantCulture, $"- {Escape(note)}");
            if (scenario.Notes.Count > 0)
                md.AppendLine();
            md.AppendLine(CultureInfo.InvariantCulture, $"_{scenario.Seconds:0.0} s_");
            md.AppendLine();
        }
        foreach (var image in images)
        {
            md.AppendLine(CultureInfo.InvariantCulture, $"![{Path.GetFileNameWithoutExtension(image)}]({Path.GetFileName(image)})");
            md.AppendLine();
        }
        return md.ToString();
    }

    static string Escape(string value) => value.Replace("|", "\\|", StringComparison.Ordinal).Replace("\n", " ", StringComparison.Ordinal);
}
