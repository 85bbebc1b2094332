using System.Diagnostics;

namespace LaneQueue.Tests.Integration;

/// <summary>
/// A program run to its end with its output captured: the any-language examples and the Python and TypeScript clients'
/// builds and suites. A program that is not installed throws <see cref="System.ComponentModel.Win32Exception"/> (each test
/// says how to install it); one that outlives <c>timeoutSeconds</c> is killed, with its whole tree, and fails the test.
/// </summary>
internal static class ChildProcess
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr)
    {
        public override string ToString() => $"exit {ExitCode}\n--- stdout ---\n{Stdout.TrimEnd()}\n--- stderr ---\n{Stderr.TrimEnd()}";
    }

    /// <param name="environment">Variables to set; a null value removes the variable.</param>
    public static async Task<Result> RunAsync(string fileName, IEnumerable<string> arguments, string workingDirectory,
        IEnumerable<KeyValuePair<string, string?>>? environment = null, int timeoutSeconds = 120)
    {
        var start = new ProcessStartInfo(fileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory,
        };
        var shown = arguments.ToList();
        foreach (var argument in shown)
            start.ArgumentList.Add(argument);
        foreach (var (name, value) in environment ?? [])
        {
            if (value is null)
                start.Environment.Remove(name);
            else
                start.Environment[name] = value;
        }
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {fileName}");
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(timeoutSeconds));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            Assert.Fail($"{fileName} {string.Join(' ', shown)} did not exit within {timeoutSeconds} s\n--- stdout ---\n{await stdout}\n--- stderr ---\n{await stderr}");
        }
        return new Result(process.ExitCode, await stdout, await stderr);
    }
}
