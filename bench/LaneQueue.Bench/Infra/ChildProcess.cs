using System.Collections.Concurrent;
using System.Diagnostics;

namespace LaneQueue.Bench.Infra;

/// <summary>
/// A process the bench started (a consumer of a fleet, a baseline consumer). Its output is read all the time (so it
/// never blocks on a full pipe) and kept for diagnostics; every live child is killed when the bench exits, however
/// it exits (see <see cref="KillAll"/>).
/// </summary>
public sealed class ChildProcess : IDisposable
{
    static readonly ConcurrentDictionary<int, ChildProcess> Live = new();

    readonly Process _process;
    readonly ConcurrentQueue<(DateTimeOffset At, string Line)> _lines = new();
    int _lineCount;

    ChildProcess(string name, Process process)
    {
        Name = name;
        _process = process;
    }

    public string Name { get; }

    public int Pid => _process.Id;

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
                return true;
            }
        }
    }

    /// <summary>Raised for each line the process writes (stdout and stderr), with the time it was read.</summary>
    public event Action<DateTimeOffset, string>? LineRead;

    public static ChildProcess Start(string name, string fileName, IEnumerable<string> arguments, string? workingDirectory = null)
    {
        var info = new ProcessStartInfo(fileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? Environment.CurrentDirectory,
        };
        foreach (var argument in arguments)
            info.ArgumentList.Add(argument);
        // The children must not inherit a broker URL other than the one they are given on the command line.
        info.Environment.Remove("LANEQUEUE_RABBITMQ_URL");
        info.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        var process = new Process { StartInfo = info, EnableRaisingEvents = true };
        var child = new ChildProcess(name, process);
        process.OutputDataReceived += (_, e) => child.OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => child.OnLine(e.Data);
        if (!process.Start())
            throw new InvalidOperationException($"could not start {name}: {fileName}");
        Live[process.Id] = child;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return child;
    }

    void OnLine(string? line)
    {
        if (line is null)
            return;
        var now = DateTimeOffset.UtcNow;
        _lines.Enqueue((now, line));
        // Keep the last 2,000 lines: enough to explain a failure, bounded however chatty the child is.
        if (Interlocked.Increment(ref _lineCount) > 2000 && _lines.TryDequeue(out _))
            Interlocked.Decrement(ref _lineCount);
        LineRead?.Invoke(now, line);
    }

    /// <summary>Lines read so far that match, with the time each was read.</summary>
    public IReadOnlyList<(DateTimeOffset At, string Line)> Lines(Func<string, bool> match) =>
        _lines.Where(l => match(l.Line)).ToList();

    public string Tail(int count = 25) => string.Join(Environment.NewLine, _lines.TakeLast(count).Select(l => "    " + l.Line));

    /// <summary>Waits (bounded) for a line that matches; throws with the process's last lines when it exits first.</summary>
    public async Task<string> WaitForLineAsync(Func<string, bool> match, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var found = _lines.FirstOrDefault(l => match(l.Line));
            if (found.Line is not null)
                return found.Line;
            if (HasExited)
                throw new InvalidOperationException($"{Name} exited (code {ExitCode}) before it was ready:{Environment.NewLine}{Tail()}");
            await Task.Delay(20, cancellationToken);
        }
        throw new TimeoutException($"{Name} printed no expected line within {timeout.TotalSeconds:0} s:{Environment.NewLine}{Tail()}");
    }

    public int? ExitCode => HasExited ? _process.ExitCode : null;

    /// <summary>Resident set size (VmRSS from /proc/&lt;pid&gt;/status) in KiB, or null when it cannot be read.</summary>
    public long? RssKiB()
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{Pid}/status"))
            {
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                    return long.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
        return null;
    }

    /// <summary>CPU time (user + system) the process has used so far, from /proc/&lt;pid&gt;/stat; null when unreadable.</summary>
    public TimeSpan? CpuTime() => CpuTimeOf(Pid);

    public static TimeSpan? CpuTimeOf(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            // Fields after the command name (which is in parentheses and may hold spaces): state is field 3, utime 14, stime 15.
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            var ticks = long.Parse(fields[11], System.Globalization.CultureInfo.InvariantCulture) +
                        long.Parse(fields[12], System.Globalization.CultureInfo.InvariantCulture);
            return TimeSpan.FromSeconds(ticks / (double)ClockTicks.Value);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return null;
        }
    }

    /// <summary>Clock ticks per second of /proc/&lt;pid&gt;/stat's times (<c>getconf CLK_TCK</c>; 100, Linux's USER_HZ, when it cannot be asked).</summary>
    static readonly Lazy<long> ClockTicks = new(() =>
    {
        try
        {
            using var getconf = Process.Start(new ProcessStartInfo("getconf", "CLK_TCK") { RedirectStandardOutput = true, RedirectStandardError = true });
            if (getconf is not null)
            {
                var output = getconf.StandardOutput.ReadToEnd().Trim();
                if (getconf.WaitForExit(5000) && long.TryParse(output, System.Globalization.CultureInfo.InvariantCulture, out var hz) && hz > 0)
                    return hz;
            }
        }
        catch (System.ComponentModel.Win32Exception)
        {
        }
        return 100;
    });

    /// <summary>
    /// The pid of the local RabbitMQ node (the beam.smp started with "-s rabbit boot"; rabbitmqctl and friends run
    /// short-lived beam.smp VMs of their own), the longest-running one when there are several; null when none is visible.
    /// </summary>
    public static int? FindBrokerPid() => FindBrokerPid(null);

    /// <summary>
    /// The pid of the RabbitMQ node named <paramref name="node"/> (e.g. <c>lq-bench@localhost</c>, as the management API's
    /// overview names it: an extra node has RABBITMQ_NODENAME in its environment, the default <c>rabbit@host</c> none), or
    /// of the oldest node when <paramref name="node"/> is null.
    /// </summary>
    public static int? FindBrokerPid(string? node)
    {
        (int Pid, long Start)? oldest = null;
        try
        {
            foreach (var dir in Directory.EnumerateDirectories("/proc"))
            {
                if (!int.TryParse(Path.GetFileName(dir), out var pid))
                    continue;
                try
                {
                    if (File.ReadAllText(Path.Combine(dir, "comm")).Trim() != "beam.smp" ||
                        !File.ReadAllText(Path.Combine(dir, "cmdline")).Replace('\0', ' ').Contains("-s rabbit boot", StringComparison.Ordinal))
                        continue;
                    if (node is not null && NodeNameOf(dir) is var name && name != node && !(name is null && node.StartsWith("rabbit@", StringComparison.Ordinal)))
                        continue;
                    var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                    var start = long.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[19], System.Globalization.CultureInfo.InvariantCulture);
                    if (oldest is null || start < oldest.Value.Start)
                        oldest = (pid, start);
                }
                catch (FormatException)
                {
                }
                catch (IOException)
                {
                }
                catch (UnauthorizedAccessException)
                {
                }
            }
        }
        catch (IOException)
        {
        }
        return oldest?.Pid;
    }

    static string? NodeNameOf(string procDir) =>
        File.ReadAllText(Path.Combine(procDir, "environ")).Split('\0')
            .FirstOrDefault(v => v.StartsWith("RABBITMQ_NODENAME=", StringComparison.Ordinal))?["RABBITMQ_NODENAME=".Length..];

    /// <summary>Kills the process and its children (SIGKILL) and waits, bounded, for it to go.</summary>
    public void Kill()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit(5000);
            }
        }
        catch (InvalidOperationException)
        {
        }
        catch (System.ComponentModel.Win32Exception)
        {
        }
        finally
        {
            Live.TryRemove(Pid, out _);
        }
    }

    public void Dispose()
    {
        Kill();
        _process.Dispose();
    }

    /// <summary>Kills every child still alive; safe to call from any thread, any number of times.</summary>
    public static int KillAll()
    {
        var killed = 0;
        foreach (var child in Live.Values.ToList())
        {
            child.Kill();
            killed++;
        }
        return killed;
    }
}
