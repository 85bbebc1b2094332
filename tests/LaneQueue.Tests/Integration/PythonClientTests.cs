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
    const string InstallHint = "apt-get install python3-aio-pika python3-hatchling python3-pytest python3-venv";

    static readonly string Root = Faults.Repo.Root;
    static readonly string ClientDir = Path.Combine(Root, "clients", "python");
    static readonly SemaphoreSlim BuildLock = new(1, 1);
    static string? _wheel;

    /// <summary>Debian's python (where the python3-* packages install), or <c>LANEQUEUE_PYTHON</c>.</summary>
    static string SystemPython => Environment.GetEnvironmentVariable("LANEQUEUE_PYTHON") is { Length: > 0 } python ? python : "/usr/bin/python3";

    /// <summary>Runs a program with no Python path of the caller's and no bytecode written; a python that is missing fails with how to install it.</summary>
    static async Task<ChildProcess.Result> RunAsync(string fileName, IEnumerable<string> arguments, string workingDirectory,
        IDictionary<string, string?>? environment = null, int timeoutSeconds = 120)
    {
        var variables = new Dictionary<string, string?> { ["PYTHONPATH"] = null, ["PYTHONHOME"] = null, ["PYTHONDONTWRITEBYTECODE"] = "1" };
        foreach (var (name, value) in environment ?? new Dictionary<string, string?>())
            variables[name] = value;
        try
        {
            return await ChildProcess.RunAsync(fileName, arguments, workingDirectory, variables, timeoutSeconds);
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            Assert.Fail($"cannot run {fileName} ({ex.Message}): the Python client needs Debian's python3 with its packages: {InstallHint}");
            throw;
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
        var check = await RunAsync(SystemPython, ["-c", "import aio_pika, hatchling, pytest, venv, ensurepip"], Root, timeoutSeconds: 60);
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

    /// <summary>
    /// Differential check beyond the shared cases: a seeded corpus of task bodies (every mix of hostile field values, key
    /// orders, envelopes, repeated keys, and byte-level mutations of those) goes through the installed Python parser and
    /// through <see cref="TaskParser"/>; both must give each body the same verdict and the same field.
    /// </summary>
    [Fact]
    public async Task The_installed_parser_agrees_with_TaskParser_on_a_generated_hostile_corpus()
    {
        var python = await InstalledPythonAsync();
        var corpus = HostileCorpus(seed: 2026, count: 10_000).ToList();
        var work = Directory.CreateTempSubdirectory("lanequeue-py-corpus-").FullName;
        try
        {
            var input = Path.Combine(work, "bodies.txt");
            var verdicts = Path.Combine(work, "verdicts.txt");
            await File.WriteAllLinesAsync(input, corpus.Select(Convert.ToBase64String));
            const string Script = """
                import base64, sys
                from lanequeue import InvalidTaskError, parse_task
                with open(sys.argv[1]) as bodies, open(sys.argv[2], "w") as out:
                    for line in bodies:
                        try:
                            parse_task(base64.b64decode(line.strip()))
                            out.write("valid\n")
                        except InvalidTaskError as refused:
                            out.write("invalid " + refused.field + "\n")
                        except Exception as crash:
                            out.write("crash " + type(crash).__name__ + ": " + str(crash).replace("\n", " ")[:200] + "\n")
                """;
            var run = await RunAsync(python, ["-c", Script, input, verdicts], work, timeoutSeconds: 300);
            Assert.True(run.ExitCode == 0, $"the Python parser did not get through the corpus:\n{run}");
            var pythonVerdicts = await File.ReadAllLinesAsync(verdicts);
            Assert.Equal(corpus.Count, pythonVerdicts.Length);
            var mismatches = new List<string>();
            for (var i = 0; i < corpus.Count; i++)
            {
                string expected;
                try
                {
                    TaskParser.Parse(corpus[i]);
                    expected = "valid";
                }
                catch (InvalidTaskException refused)
                {
                    expected = "invalid " + refused.Field + $" ({refused.Message})";
                }
                var got = pythonVerdicts[i];
                if (!expected.StartsWith(got + (got == "valid" ? "" : " ("), StringComparison.Ordinal) && expected != got)
                    mismatches.Add($"#{i} {Shown(corpus[i])}\n    .NET: {expected}\n    Python: {got}");
            }
            output.WriteLine($"{corpus.Count} bodies, {corpus.Count(b => { try { TaskParser.Parse(b); return true; } catch (InvalidTaskException) { return false; } })} valid, {mismatches.Count} mismatches");
            Assert.True(mismatches.Count == 0, $"{mismatches.Count} of {corpus.Count} bodies get another verdict from the Python parser:\n{string.Join("\n", mismatches.Take(20))}");
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    static string Shown(byte[] body)
    {
        var text = Encoding.UTF8.GetString(body);
        return text.Length <= 300 ? text : text[..300] + $"… ({body.Length} bytes)";
    }

    static readonly string[] Ids =
    [
        "\"t-1\"", "\"\"", "\"a b\"", "\"a\\u0000\"", "\"\u00e9t\u00e9\"", "\"" + new string('a', 200) + "\"", "\"" + new string('a', 201) + "\"",
        "\"9\"", "\"-a\"", "7", "null", "\"a\\ud800\"", "\"a\\nb\"", "\"a\\/b\"", "\"A.b_c:d@e/f-g\"", "\"t\\u002d1\"", "\"a\\u00e9\"", "[]", "\"x\\ud83d\\ude00\"",
    ];

    static readonly string[] Lanes =
    [
        "\"query\"", "\"Query\"", "\"QUERY\"", "\"query \"", "\"\"", "1", "null", "\"control\"", "\"gen\\u0065rate\"", "\"\\u0071uery\"", "\"execute\"",
        "\"q\\ud800\"", "{}",
    ];

    static readonly string[] Payloads =
    [
        "{}", "null", "[]", "\"s\"", "1e400", "-0.0", "{\"a\":\"\\ud800\"}", "{\"\\udc00\":1}", "{\"a\":\"\\ud800\",\"a\":1}", "[\"\\ud83d\\ude00\"]",
        "{\"k\":\"\\ud83d\"}", "{\"k\":\"\\ude00\\ud83d\"}", new string('[', 62) + new string(']', 62), new string('[', 63) + new string(']', 63),
        "{\"deep\":" + new string('[', 61) + new string(']', 61) + "}", "{\"deep\":" + new string('[', 62) + new string(']', 62) + "}",
        "\"\\\\ud800\"", "{\"s\":\"\u00e9\u20ac\ud83d\ude00\"}", "123456789012345678901234567890", "[1,2,3]", "true",
    ];

    static readonly string[] Timeouts =
    [
        "1", "0", "-1", "1.0", "1.5", "5e3", "5E+3", "5e-3", "1e-400", "1e400", "-1e400", "2147483647", "2147483647.0", "2147483647.5", "2147483648",
        "9223372036854775807", "9223372036854775808", "99999999999999999999999999999999", "5.00000000000000000000000000001",
        "5.0000000000000000000000000001", "0.99999999999999999999999999999", "-0", "-0.0", "\"5\"", "true", "null", "[]", "{}", "1e2", "1.23e2",
        "7.9228162514264337593543950335e28", "0.1e1", "10e-1", "100e-2", "1" + new string('0', 40) + "e-40",
    ];

    static readonly string[] Timestamps =
    [
        "\"2026-01-31T12:00:00Z\"", "\"2026-01-31T12:00:00z\"", "\"2026-01-31t12:00:00Z\"", "\"2026-02-29T00:00:00Z\"", "\"2024-02-29T00:00:00Z\"",
        "\"1900-01-01T00:00:00-14:00\"", "\"2999-12-31T23:59:59+14:00\"", "\"1899-12-31T23:59:59Z\"", "\"3000-01-01T00:00:00Z\"",
        "\"2026-01-31T24:00:00Z\"", "\"2026-01-31T12:00:60Z\"", "\"2026-13-01T00:00:00Z\"", "\"2026-00-10T00:00:00Z\"", "\"2026-01-00T00:00:00Z\"",
        "\"2026-04-31T00:00:00Z\"", "\"2026-01-31T12:00:00.1234567890123456Z\"", "\"2026-01-31T12:00:00.12345678901234567Z\"",
        "\"2026-01-31T12:00:00.1234567890123456+14:00\"", "\"2026-01-31T12:00:00.Z\"", "\"2026-01-31T12:00:00+14:01\"", "\"2026-01-31T12:00:00+13:59\"",
        "\"2026-01-31T12:00:00+0100\"", "\"2026-01-31T12:00:00\\u005A\"", "\"2026-01-31T12:00:00Z\\n\"", "null", "1", "\"\\ud800\"", "\"1900-02-29T00:00:00Z\"",
        "\"2000-02-29T00:00:00Z\"", "\"2100-02-29T00:00:00Z\"", "\"2026-01-31T12:00:00-00:00\"",
    ];

    static readonly string[] Strings =
    [
        "null", "\"echo\"", "3", "\"" + new string('c', 200) + "\"", "\"" + new string('c', 201) + "\"", "\"" + string.Concat(Enumerable.Repeat("\ud83d\ude00", 200)) + "\"",
        "\"" + string.Concat(Enumerable.Repeat("\ud83d\ude00", 201)) + "\"", "\"\\ud800\"", "[]", "\"" + string.Concat(Enumerable.Repeat("\\ud83d\\ude00", 201)) + "\"",
        "\"" + new string('c', 199) + "\\u00e9\\u00e9\"",
    ];

    static readonly string[] Booleans = ["true", "false", "null", "\"true\"", "0", "[]"];

    static readonly string[] Checkpoints = ["null", "[1]", "\"\\ud800\"", "{\"\\ud800\":1}", "{\"a\":[\"\\udfff\"]}"];

    static readonly string[] Extras =
    [
        "\"x\":\"\\ud800\"", "\"\\ud800\":1", "\"id\":\"t-2\"", "\"lane\":\"query\"", "\"payload\":{}", "\"ID\":1", "\"x\":1,\"x\":2", "\"timeout_ms\":5",
        "\"preemptible\":true", "\"\\u0069d\":\"t-3\"", "\"checkpoint\":null", "\"messageType\":[\"x\"]", "\"message\":{\"id\":\"m\",\"lane\":\"query\",\"payload\":{}}",
    ];

    static readonly string[] Snippets =
    [
        "\\ud800", "\\udc00", "\\ud83d\\ude00", "\"id\":\"x\",", "\"lane\":\"query\",", "\"payload\":{},", "1e400", "5.0", "-0", "null", "[[[[[[[[", "]]]]", "\u00e9",
        "\ud83d\ude00", ",", ":", "\"", "\\", "{", "}", " ", "\t", "\u2028", "\u00a0", "/*c*/", "NaN", "'", "\\u0000",
    ];

    static readonly byte[] Bytes = [(byte)'"', (byte)'\\', (byte)'{', (byte)'}', (byte)'[', (byte)']', (byte)',', (byte)':', (byte)'0', (byte)'9', (byte)'e',
        (byte)'-', (byte)'.', (byte)' ', 0x00, 0x1F, 0x7F, 0xC0, 0xFF, 0xED, 0xA0, 0xEF, 0xBB, 0xBF, 0x80];

    /// <summary>Task bodies from the field values above (mixed, shuffled, wrapped in envelopes, mutated byte by byte); the same for a seed.</summary>
    static IEnumerable<byte[]> HostileCorpus(int seed, int count)
    {
        var random = new Random(seed);
        T Pick<T>(IReadOnlyList<T> from) => from[random.Next(from.Count)];
        string Task()
        {
            var members = new List<string>();
            if (random.Next(12) > 0)
                members.Add("\"id\":" + (random.Next(3) == 0 ? Pick(Ids) : "\"t-1\""));
            if (random.Next(12) > 0)
                members.Add("\"lane\":" + (random.Next(3) == 0 ? Pick(Lanes) : "\"query\""));
            if (random.Next(12) > 0)
                members.Add("\"payload\":" + (random.Next(3) == 0 ? Pick(Payloads) : "{}"));
            if (random.Next(2) == 0)
                members.Add("\"timeout_ms\":" + Pick(Timeouts));
            if (random.Next(2) == 0)
                members.Add("\"created_at\":" + Pick(Timestamps));
            if (random.Next(4) == 0)
                members.Add("\"command_type\":" + Pick(Strings));
            if (random.Next(4) == 0)
                members.Add("\"session_id\":" + Pick(Strings));
            if (random.Next(5) == 0)
                members.Add("\"preemptible\":" + Pick(Booleans));
            if (random.Next(6) == 0)
                members.Add("\"checkpoint\":" + Pick(Checkpoints));
            if (random.Next(5) == 0)
                members.Add(Pick(Extras));
            var shuffled = members.OrderBy(_ => random.Next()).ToList();
            return "{" + string.Join(random.Next(8) == 0 ? " , " : ",", shuffled) + "}";
        }

        for (var i = 0; i < count; i++)
        {
            var text = Task();
            if (random.Next(10) == 0)
                text = random.Next(2) == 0
                    ? $"{{\"messageType\":[\"urn:message:LaneQueue.Contracts:ExternalTask\"],\"message\":{text}}}"
                    : $"{{\"message\":{text},\"messageType\":[],\"lane\":\"query\"}}";
            if (random.Next(4) == 0)
            {
                var position = random.Next(text.Length + 1);
                text = text[..position] + Pick(Snippets) + text[position..];
            }
            var bytes = Encoding.UTF8.GetBytes(text);
            if (random.Next(6) == 0)
            {
                bytes = (byte[])bytes.Clone();
                bytes[random.Next(bytes.Length)] = Pick(Bytes);
            }
            if (random.Next(15) == 0)
                bytes = bytes[..random.Next(bytes.Length)];
            yield return bytes;
        }
    }

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
