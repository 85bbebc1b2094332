using System.Text.Json;
using System.Text.Json.Serialization;

namespace LaneQueue.Bench.Report;

/// <summary>Writes latest.json, latest.md and the plots into the output folder.</summary>
public static class Writer
{
    static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public static async Task<List<string>> WriteAsync(RunResult run, string directory)
    {
        Directory.CreateDirectory(directory);
        var written = new List<string>();
        var images = new List<string>();
        foreach (var (file, draw) in new (string, Func<RunResult, string, bool>)[]
                 {
                     ("preemption.png", Plots.Preemption),
                     ("scale.png", Plots.Scale),
                     ("aging.png", Plots.Aging),
                 })
        {
            var path = Path.Combine(directory, file);
            try
            {
                if (draw(run, path))
                    images.Add(path);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                Console.Error.WriteLine($"  (could not draw {file}: {ex.Message})");
            }
        }
        var json = Path.Combine(directory, "latest.json");
        await File.WriteAllTextAsync(json, JsonSerializer.Serialize(run, Json));
        written.Add(json);
        var md = Path.Combine(directory, "latest.md");
        await File.WriteAllTextAsync(md, Tables.Markdown(run, images));
        written.Add(md);
        var machine = Path.Combine(directory, "machine.txt");
        await File.WriteAllLinesAsync(machine, run.Machine.Select(kv => $"{kv.Key}: {kv.Value}")
            .Append($"run: {run.Mode}, {run.TotalSeconds:0.0} s"));
        written.Add(machine);
        written.AddRange(images);
        return written;
    }
}
