using System.Diagnostics;
using System.Runtime.InteropServices;

namespace LaneQueue.Bench.Infra;

/// <summary>What the numbers were measured on: cores, memory, CPU model, kernel, runtime, broker, date, load.</summary>
public static class MachineInfo
{
    public static async Task<Dictionary<string, string>> DescribeAsync(Broker broker, string root, CancellationToken cancellationToken)
    {
        var (rabbit, erlang) = await broker.VersionsAsync(cancellationToken);
        return new Dictionary<string, string>
        {
            ["date"] = DateTimeOffset.UtcNow.ToString("yyyy-MM-dd HH:mm 'UTC'", System.Globalization.CultureInfo.InvariantCulture),
            ["cores"] = Environment.ProcessorCount.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["cpu"] = CpuModel(),
            ["memory"] = Memory(),
            ["kernel"] = Read("/proc/sys/kernel/osrelease") ?? RuntimeInformation.OSDescription,
            ["os"] = RuntimeInformation.OSDescription,
            ["dotnet"] = RuntimeInformation.FrameworkDescription,
            ["rabbitmq"] = rabbit,
            ["erlang"] = erlang,
            ["load_average_start"] = LoadAverage(),
            ["git_commit"] = Git(root, "rev-parse --short HEAD") ?? "?",
        };
    }

    public static string LoadAverage() => string.Join(' ', (Read("/proc/loadavg") ?? "?").Split(' ').Take(3));

    static string CpuModel()
    {
        var lines = File.Exists("/proc/cpuinfo") ? File.ReadAllLines("/proc/cpuinfo") : [];
        var model = lines.FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim();
        var mhz = lines.FirstOrDefault(l => l.StartsWith("cpu MHz", StringComparison.Ordinal))?.Split(':', 2)[1].Trim();
        return model is null ? RuntimeInformation.ProcessArchitecture.ToString() : mhz is null ? model : $"{model} @ {mhz} MHz";
    }

    static string Memory()
    {
        var total = File.Exists("/proc/meminfo")
            ? File.ReadLines("/proc/meminfo").FirstOrDefault(l => l.StartsWith("MemTotal:", StringComparison.Ordinal))
            : null;
        if (total is null)
            return "?";
        var kib = long.Parse(total["MemTotal:".Length..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
        return $"{kib / 1024.0 / 1024.0:0.0} GiB";
    }

    static string? Read(string path)
    {
        try
        {
            return File.ReadAllText(path).Trim();
        }
        catch (IOException)
        {
            return null;
        }
    }

    static string? Git(string root, string arguments)
    {
        try
        {
            using var git = Process.Start(new ProcessStartInfo("git", arguments)
            {
                WorkingDirectory = root,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            });
            if (git is null)
                return null;
            var output = git.StandardOutput.ReadToEnd().Trim();
            return git.WaitForExit(5000) && git.ExitCode == 0 ? output : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null;
        }
    }
}
