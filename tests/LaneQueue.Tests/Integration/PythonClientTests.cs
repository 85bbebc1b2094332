using System.Diagnostics;
using System.IO.Compression;
using System.Text;
using System.Text.RegularExpressions;
using LaneQueue.Consumer;
using LaneQueue.Contracts;
using LaneQueue.Tests.Broker;
using Xunit.Abstractions;

namespace LaneQueue.Tests.Integration;

/// <summary>
/// The Python client (<c>clients/python</c>): its wheel is built with <c>clients/python/build.sh</c>, installed into a clean
/// venv, and its own suite (<c>clients/python/tests</c>) runs with the venv's python against two in-process consumers on a
/// fresh vhost, from a working directory where the source tree is not importable, so the installed wheel is what is
/// tested. A missing Debian package fails the test with how to install it.
/// </summary>
[Collection(BrokerCollection.Name)]
public sealed partial class PythonClientTests(BrokerFixture broker, ITestOutputHelper output)
{
    const string InstallHint = "apt-get install python3-aio-pika python3-hatchling python3-pytest python3-venv python3-pip";

    static readonly string Root = FindRoot();
    static readonly string ClientDir = Path.Combine(Root, "clients", "python");
    static readonly SemaphoreSlim BuildLock = new(1, 1);
    static string? _wheel;

    static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "LaneQueue.sln")))
                return dir.FullName;
        }
        throw new InvalidOperationException($"no LaneQueue.sln above {AppContext.BaseDirectory}");
    }

    /// <summary>Debian's python (where the python3-* packages install), or <c>LANEQUEUE_PYTHON</c>.</summary>
    static string SystemPython => Environment.GetEnvironmentVariable("LANEQUEUE_PYTHON") is { Length: > 0 } python ? python : "/usr/bin/python3";

    sealed record Run(int ExitCode, string Stdout, string Stderr)
    {
        public override string ToString() => $"exit {ExitCode}\n--- stdout ---\n{Stdout.TrimEnd()}\n--- stderr ---\n{Stderr.TrimEnd()}";
    }

    static async Task<Run> RunAsync(string fileName, IEnumerable<string> arguments, string workingDirectory,
        IDictionary<string, string?>? environment = null, int timeoutSeconds = 120)
    {
        var start = new ProcessStartInfo(fileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory,
        };
        foreach (var argument in arguments)
            start.ArgumentList.Add(argument);
        start.Environment.Remove("PYTHONPATH");
        start.Environment.Remove("PYTHONHOME");
        start.Environment["PYTHONDONTWRITEBYTECODE"] = "1";
        foreach (var (name, value) in environment ?? new Dictionary<string, string?>())
            start.Environment[name] = value;
        Process process;
        try
        {
            process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {fileName}");
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            Assert.Fail($"cannot run {fileName} ({ex.Message}): the Python client needs Debian's python3 with its packages: {InstallHint}");
            throw;
        }
        using (process)
        {
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
                Assert.Fail($"{fileName} {string.Join(' ', arguments)} did not exit within {timeoutSeconds} s\n{await stdout}\n{await stderr}");
            }
            return new Run(process.ExitCode, await stdout, await stderr);
        }
    }

    static void DeleteAtExit(string directory) => AppDomain.CurrentDomain.ProcessExit += (_, _) =>
    {
        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (IOException)
        {
        }
    };

    /// <summary>Fails with the apt-get line when Debian's python lacks a module the client's build, install or suite needs.</summary>
    static async Task RequirePythonPackagesAsync()
    {
        var check = await RunAsync(SystemPython, ["-c", "import aio_pika, hatchling, pytest, venv, ensurepip, pip"], Root, timeoutSeconds: 60);
        Assert.True(check.ExitCode == 0,
            $"{SystemPython} lacks a package the Python client needs ({check.Stderr.Trim().Split('\n').LastOrDefault()}): {InstallHint}");
    }

    /// <summary>Builds the wheel once per test run (into a temp folder) with clients/python/build.sh; returns its path.</summary>
    async Task<string> WheelAsync()
    {
        await BuildLock.WaitAsync();
        try
        {
            if (_wheel is not null && File.Exists(_wheel))
                return _wheel;
            await RequirePythonPackagesAsync();
            var outDir = Directory.CreateTempSubdirectory("lanequeue-py-wheel-").FullName;
            DeleteAtExit(outDir);
            var build = await RunAsync("bash", [Path.Combine(ClientDir, "build.sh"), outDir], Root, new Dictionary<string, string?> { ["LANEQUEUE_BUILD_PYTHON"] = SystemPython });
            output.WriteLine($"build.sh: {build}");
            Assert.True(build.ExitCode == 0, $"clients/python/build.sh failed ({InstallHint}?)\n{build}");
            var wheel = build.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Last();
            Assert.True(File.Exists(wheel), $"build.sh printed '{wheel}', which is not a file\n{build}");
            return _wheel = wheel;
        }
        finally
        {
            BuildLock.Release();
        }
    }

    static string? _python;

    /// <summary>A clean venv (sharing Debian's site packages, where aio-pika is) with the wheel installed, once per test run; its python.</summary>
    async Task<string> InstalledPythonAsync()
    {
        var wheel = await WheelAsync();
        await BuildLock.WaitAsync();
        try
        {
            if (_python is not null && File.Exists(_python))
                return _python;
            var work = Directory.CreateTempSubdirectory("lanequeue-py-venv-").FullName;
            DeleteAtExit(work);
            var venv = Path.Combine(work, "venv");
            var created = await RunAsync(SystemPython, ["-m", "venv", "--system-site-packages", venv], work);
            Assert.True(created.ExitCode == 0, $"could not create a venv ({InstallHint})\n{created}");
            var python = Path.Combine(venv, "bin", "python");
            var install = await RunAsync(python, ["-m", "pip", "install", "--no-index", "--disable-pip-version-check", "--no-input", wheel], work);
            Assert.True(install.ExitCode == 0, $"pip install --no-index {Path.GetFileName(wheel)} failed (aio-pika comes from Debian: {InstallHint})\n{install}");
            return _python = python;
        }
        finally
        {
            BuildLock.Release();
        }
    }

    /// <summary>
    /// Runs one file of the client's suite with the venv's python, from an empty temp folder (so lanequeue can only come from
    /// the venv: test_the_installed_package_is_the_one_under_test checks it); fails with the suite's output.
    /// </summary>
    async Task RunSuiteAsync(string file, IDictionary<string, string?> environment)
    {
        var python = await InstalledPythonAsync();
        var work = Directory.CreateTempSubdirectory("lanequeue-py-run-").FullName;
        try
        {
            environment["LANEQUEUE_WIRE_CASES"] = Path.Combine(Root, "src", "Contracts", "wire-cases.json");
            environment["LANEQUEUE_EXPECT_INSTALLED"] = "1";
            var clock = Stopwatch.StartNew();
            var suite = await RunAsync(python, ["-m", "pytest", "-p", "no:cacheprovider", "-v", "-rA", "--maxfail=3", Path.Combine(ClientDir, "tests", file)],
                work, environment, timeoutSeconds: 400);
            output.WriteLine($"pytest {file} ({clock.Elapsed.TotalSeconds:0.0} s): {suite}");
            Assert.True(suite.ExitCode == 0, $"the Python client's {file} failed:\n{suite}");
            Assert.Matches(@"\d+ passed", suite.Stdout);
            Assert.DoesNotMatch(@"\d+ (skipped|failed|error)", suite.Stdout);
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    [Fact]
    public async Task The_installed_client_gives_every_shared_wire_case_the_verdict_and_field_of_the_dotnet_parser() =>
        await RunSuiteAsync("test_validation.py", new Dictionary<string, string?>());

    [Fact]
    public async Task The_wheel_is_typed_and_carries_the_version_and_dependency_of_the_release()
    {
        var wheel = await WheelAsync();
        var version = VersionPattern().Match(await File.ReadAllTextAsync(Path.Combine(Root, "Directory.Build.props"))).Groups[1].Value;
        Assert.Equal($"lanequeue-{version}-py3-none-any.whl", Path.GetFileName(wheel));
        using var archive = ZipFile.OpenRead(wheel);
        var names = archive.Entries.Select(e => e.FullName).ToList();
        Assert.Contains("lanequeue/py.typed", names);
        Assert.Contains("lanequeue/__init__.py", names);
        Assert.DoesNotContain(names, n => n.Contains("__pycache__", StringComparison.Ordinal) || n.StartsWith("tests/", StringComparison.Ordinal));
        using var metadata = new StreamReader(archive.GetEntry($"lanequeue-{version}.dist-info/METADATA")!.Open(), Encoding.UTF8);
        var text = await metadata.ReadToEndAsync();
        Assert.Contains($"Version: {version}", text, StringComparison.Ordinal);
        Assert.Matches(@"Requires-Dist: aio-pika>=8\.2", text);
    }

    [Fact]
    public async Task The_python_client_suite_passes_from_the_installed_wheel_against_two_consumers()
    {
        await InstalledPythonAsync();
        await using var vhost = await broker.CreateVhostAsync();
        var consumers = new List<Microsoft.Extensions.Hosting.IHost>();
        try
        {
            for (var i = 0; i < 2; i++)
            {
                consumers.Add(await ConsumerHost.StartAsync(vhost.Url, o =>
                {
                    // What clients/python/tests/test_broker.py expects: execute is External, duplicates are known fleet-wide.
                    o.FleetDeduplication = true;
                    o.Queue = o.Queue with
                    {
                        LaneHandlers = new() { [SessionLane.Execute] = new LaneHandlerConfig { Mode = TaskHandlerMode.External, TimeoutMs = 60_000 } },
                    };
                }, name: $"py-consumer-{i}"));
            }
            await RunSuiteAsync("test_broker.py", new Dictionary<string, string?>
            {
                [LaneQueue.Producer.BrokerConnection.UrlVariable] = vhost.Url,
                [BrokerFixture.ManagementUrlVariable] = broker.Management.BaseAddress!.ToString().TrimEnd('/'),
            });
        }
        finally
        {
            foreach (var consumer in consumers)
                await consumer.StopQuietlyAsync();
        }
    }

    [GeneratedRegex(@"<Version>([^<]+)</Version>")]
    private static partial Regex VersionPattern();
}
