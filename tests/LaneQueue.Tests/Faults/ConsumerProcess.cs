using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace LaneQueue.Tests.Faults;

/// <summary>
/// The built consumer (<c>dotnet LaneQueue.TestWorker.dll --LaneQueue:...</c>) as a child process the test can kill -9.
/// Its output is kept for the failure message; the process (tree) is killed when disposed.
/// </summary>
public sealed class ConsumerProcess : IAsyncDisposable
{
    readonly Process _process;
    readonly StringBuilder _output = new();
    readonly TaskCompletionSource _started = new(TaskCreationOptions.RunContinuationsAsynchronously);

    ConsumerProcess(string name, Process process)
    {
        Name = name;
        _process = process;
    }

    public string Name { get; }

    public int Pid => _process.Id;

    /// <summary>True once the process has exited, or when it was disposed (a supervisor may look at it again).</summary>
    public bool HasExited
    {
        get
        {
            try
            {
                return _process.HasExited;
            }
            catch (InvalidOperationException)
            {
                return true; // disposed: no process is associated any more
            }
        }
    }

    public int? ExitCode
    {
        get
        {
            try
            {
                return _process.HasExited ? _process.ExitCode : null;
            }
            catch (InvalidOperationException)
            {
                return null;
            }
        }
    }

    public string Output
    {
        get
        {
            lock (_output)
                return _output.ToString();
        }
    }

    /// <summary>Resident memory of the process in MiB (Linux /proc), or null once it has exited.</summary>
    public double? RssMiB()
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{Pid}/status"))
            {
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                    return double.Parse(line[6..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) / 1024;
            }
        }
        catch (IOException)
        {
        }
        return null;
    }

    /// <summary>Starts a consumer and waits until its host (and bus) has started.</summary>
    public static async Task<ConsumerProcess> StartAsync(string url, string name, IEnumerable<string>? settings = null, int startTimeoutSeconds = 60)
    {
        var dll = Repo.ConsumerDll;
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = Path.GetDirectoryName(dll)!,
        };
        info.ArgumentList.Add(dll);
        info.ArgumentList.Add($"--LaneQueue:RabbitMqUrl={url}");
        info.ArgumentList.Add($"--LaneQueue:ConsumerName={name}");
        info.ArgumentList.Add("--LaneQueue:ShutdownTimeoutSeconds=2");
        info.ArgumentList.Add("--Logging:Console:FormatterName=simple");
        foreach (var setting in settings ?? [])
            info.ArgumentList.Add(setting);
        info.Environment["DOTNET_gcServer"] = "0";
        if (Environment.GetEnvironmentVariable("LANEQUEUE_FAULT_LOG") is { Length: > 0 } level)
            info.ArgumentList.Add($"--Logging:LogLevel:Default={level}");
        info.Environment.Remove("LANEQUEUE_RABBITMQ_URL");

        var process = new Process { StartInfo = info, EnableRaisingEvents = true };
        var consumer = new ConsumerProcess(name, process);
        process.OutputDataReceived += (_, e) => consumer.OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => consumer.OnLine(e.Data);
        process.Exited += (_, _) => consumer._started.TrySetException(new InvalidOperationException($"consumer {name} exited during start:\n{consumer.Output}"));
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            await consumer._started.Task.WaitAsync(TimeSpan.FromSeconds(startTimeoutSeconds));
        }
        catch (TimeoutException)
        {
            await consumer.DisposeAsync();
            throw new TimeoutException($"consumer {name} did not start within {startTimeoutSeconds} s:\n{consumer.Output}");
        }
        return consumer;
    }

    void OnLine(string? line)
    {
        if (line is null)
            return;
        lock (_output)
        {
            if (_output.Length < 200_000)
                _output.AppendLine(line);
        }
        if (line.Contains("Application started", StringComparison.Ordinal))
            _started.TrySetResult();
    }

    /// <summary>Writes the whole output to a file under the temp directory; returns its path (for failure messages).</summary>
    public string SaveOutput(string test)
    {
        var dir = Path.Combine(Path.GetTempPath(), "lanequeue-fault-logs");
        Directory.CreateDirectory(dir);
        var path = Path.Combine(dir, $"{test}-{Name}-{DateTime.UtcNow:HHmmss}.log");
        File.WriteAllText(path, Output);
        return path;
    }

    /// <summary>kill -9 (SIGKILL): no drain, no acks, no goodbye to the broker.</summary>
    public void KillHard()
    {
        if (!_process.HasExited)
            _process.Kill(entireProcessTree: true);
        _process.WaitForExit(10_000);
    }

    public async Task<bool> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cts.Token);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    public ValueTask DisposeAsync()
    {
        try
        {
            KillHard();
        }
        catch (InvalidOperationException)
        {
            // never started
        }
        _process.Dispose();
        return ValueTask.CompletedTask;
    }
}
