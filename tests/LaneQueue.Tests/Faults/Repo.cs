using System.Diagnostics;
using System.Text;

namespace LaneQueue.Tests.Faults;

/// <summary>Where the repository and the built consumer are, and a bounded way to run a script.</summary>
public static class Repo
{
    public static string Root { get; } = FindRoot();

    static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "LaneQueue.sln")))
                return dir.FullName;
        }
        throw new InvalidOperationException($"LaneQueue.sln not found above {AppContext.BaseDirectory}");
    }

    /// <summary>
    /// The consumer dll to run as a child process: the copy next to this test assembly (the test project references the
    /// consumer, so it is built with the same configuration), else src/Consumer/bin/&lt;Config&gt;/net10.0.
    /// </summary>
    public static string ConsumerDll
    {
        get
        {
            var beside = Path.Combine(AppContext.BaseDirectory, "LaneQueue.TestWorker.dll");
            if (File.Exists(beside) && File.Exists(Path.Combine(AppContext.BaseDirectory, "LaneQueue.TestWorker.runtimeconfig.json")))
                return beside;
            var config = new DirectoryInfo(AppContext.BaseDirectory).Parent?.Name ?? "Debug";
            var built = Path.Combine(Root, "tests", "LaneQueue.TestWorker", "bin", config, "net10.0", "LaneQueue.TestWorker.dll");
            return File.Exists(built)
                ? built
                : throw new FileNotFoundException($"the consumer is not built: run 'dotnet build tests/LaneQueue.TestWorker -c {config}'", built);
        }
    }

    public sealed record Run(int ExitCode, string Output);

    /// <summary>Runs <c>bash scripts/NAME args</c> with a time-out; the process tree is killed when it passes.</summary>
    public static async Task<Run> ScriptAsync(string script, IEnumerable<string> args, TimeSpan timeout, IDictionary<string, string>? environment = null)
    {
        var info = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = Root };
        info.ArgumentList.Add(Path.Combine(Root, "scripts", script));
        foreach (var arg in args)
            info.ArgumentList.Add(arg);
        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
            info.Environment[key] = value;
        using var process = new Process { StartInfo = info };
        var output = new StringBuilder();
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            lock (output)
                return new Run(-1, output + $"\n(timed out after {timeout.TotalSeconds:0} s)");
        }
        process.WaitForExit();
        lock (output)
            return new Run(process.ExitCode, output.ToString());
    }
}
