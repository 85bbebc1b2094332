using System.Diagnostics;
using LaneQueue.Tests.Faults;

namespace LaneQueue.Tests.Integration;

/// <summary>
/// A worker process (the test worker: src/Worker's Program plus a crash handler) started with a setting it refuses ends
/// at once with exit code 2 and an <c>error:</c> line naming the setting, before it connects to any broker; it used to die
/// of an unhandled exception (stack trace, abort, exit code 134).
/// </summary>
public class WorkerStartTests
{
    static async Task<(int Code, string Output)> StartWorkerAsync(params string[] settings)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        info.ArgumentList.Add(Repo.ConsumerDll);
        // Nothing answers here: a worker that got past its settings would be trying to connect, not exiting.
        info.ArgumentList.Add("--LaneQueue:RabbitMqUrl=amqp://guest:guest@127.0.0.1:1/");
        foreach (var setting in settings)
            info.ArgumentList.Add(setting);
        info.Environment.Remove("LANEQUEUE_RABBITMQ_URL");
        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"the worker with {string.Join(' ', settings)} did not exit within 60 s:\n{await output}\n{await error}");
        }
        return (process.ExitCode, await output + await error);
    }

    [Theory]
    [InlineData("--LaneQueue:SlotBudget=0", "error: LaneQueue:SlotBudget must be between 1 and 10000, got 0")]
    [InlineData("--LaneQueue:SlotBudget=abc", "error: Failed to convert configuration value 'abc' at 'LaneQueue:SlotBudget'")]
    public async Task A_refused_setting_ends_the_worker_with_exit_code_2_and_its_name(string setting, string problem)
    {
        var (code, output) = await StartWorkerAsync(setting);
        Assert.True(code == 2, $"exit code {code}, expected 2:\n{output}");
        Assert.Contains(problem, output, StringComparison.Ordinal);
        Assert.Contains("README.md, Configuration, lists every setting", output, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", output, StringComparison.Ordinal);
    }
}
