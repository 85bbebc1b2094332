using System.Text.Json;
using System.Text.Json.Nodes;

namespace LaneQueue.Tests.Broker;

/// <summary>
/// What a test measured, written as a results file when <c>LANEQUEUE_EVIDENCE_DIR</c> names a folder: one JSON file per
/// test (<c>&lt;name&gt;.json</c>: the test, when, the git commit, the machine's cores and load, and the test's own
/// numbers). The numbers docs/reliability.md and the README quote come from such files committed under
/// <c>docs/evidence/</c>, with the command that wrote them. Without the variable nothing is written.
/// </summary>
public static class Evidence
{
    public const string DirectoryVariable = "LANEQUEUE_EVIDENCE_DIR";

    static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public static string? Directory => Environment.GetEnvironmentVariable(DirectoryVariable) is { Length: > 0 } dir ? dir : null;

    /// <summary>Writes <paramref name="measured"/> (any object, serialized snake_case) as <c>&lt;name&gt;.json</c>.</summary>
    public static void Write(string name, object measured, string? summary = null)
    {
        if (Directory is not { } dir)
            return;
        System.IO.Directory.CreateDirectory(dir);
        var record = new JsonObject
        {
            ["test"] = name,
            ["written_at"] = DateTimeOffset.UtcNow.ToString("yyyy-MM-dd HH:mm:ss 'UTC'", System.Globalization.CultureInfo.InvariantCulture),
            ["git_commit"] = GitCommit(),
            ["cores"] = Environment.ProcessorCount,
            ["load_average"] = LoadAverage(),
            ["summary"] = summary,
            ["measured"] = JsonSerializer.SerializeToNode(measured, Json),
        };
        File.WriteAllText(Path.Combine(dir, $"{name}.json"), record.ToJsonString(Json) + Environment.NewLine);
    }

    static string? LoadAverage()
    {
        try
        {
            return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3));
        }
        catch (IOException)
        {
            return null;
        }
    }

    static string? GitCommit()
    {
        try
        {
            var info = new System.Diagnostics.ProcessStartInfo("git", "describe --always --dirty --abbrev=7")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                WorkingDirectory = AppContext.BaseDirectory,
            };
            using var git = System.Diagnostics.Process.Start(info);
            if (git is null)
                return null;
            var commit = git.StandardOutput.ReadToEnd().Trim();
            git.WaitForExit(10_000);
            return git.ExitCode == 0 ? commit : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null;
        }
    }
}
