using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;
using LaneQueue.Consumer;
using LaneQueue.Contracts;
using LaneQueue.Tests.Broker;
using Xunit.Abstractions;

namespace LaneQueue.Tests.Integration;

/// <summary>
/// The TypeScript client (<c>clients/typescript</c>, npm package <c>@lanequeue/client</c>) as a user gets it: built into a
/// tarball by <c>clients/typescript/build.sh</c>, installed with npm into an empty project, and its test suite
/// (<c>clients/typescript/test/</c>, importing <c>@lanequeue/client</c> from that project's node_modules, not from the source
/// tree) run with <c>node --test</c> against a real broker and an in-process consumer on a fresh vhost: validation against the
/// shared wire cases, ESM and CommonJS loading, submit, results of every status, cancel, sessions, events, an External lane
/// worked by the client, and an unroutable task refused. A missing node or npm fails the test with how to install it.
/// </summary>
[Collection(BrokerCollection.Name)]
public sealed class TypeScriptClientTests(BrokerFixture broker, ITestOutputHelper output)
{
    const string InstallHint = "install Node.js 18+ with npm (Debian: apt-get install nodejs npm; the CI machine has Node 20 and npm 11)";

    static readonly string Root = Faults.Repo.Root;

    static Task<ChildProcess.Result> RunAsync(string fileName, IEnumerable<string> arguments, string workingDirectory,
        IDictionary<string, string>? environment = null, int timeoutSeconds = 300) =>
        ChildProcess.RunAsync(fileName, arguments, workingDirectory, environment?.Select(kv => new KeyValuePair<string, string?>(kv.Key, kv.Value)), timeoutSeconds);

    static async Task RequireAsync(string tool)
    {
        try
        {
            var run = await RunAsync(tool, ["--version"], Root, timeoutSeconds: 60);
            if (run.ExitCode == 0)
                return;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            // not installed
        }
        Assert.Fail($"The TypeScript client tests need {tool} on PATH: {InstallHint}.");
    }

    /// <summary>Builds the tarball, installs it into an empty npm project and copies the client's tests there.</summary>
    /// <summary>One version for everything LaneQueue ships: the npm package's is Directory.Build.props' <c>&lt;Version&gt;</c>.</summary>
    static string LaneQueueVersion() =>
        Regex.Match(File.ReadAllText(Path.Combine(Root, "Directory.Build.props")), "<Version>([^<]+)</Version>").Groups[1].Value;

    async Task<string> InstallAsync(string temp)
    {
        await RequireAsync("node");
        await RequireAsync("npm");
        var pack = Path.Combine(temp, "pack");
        var build = await RunAsync("bash", [Path.Combine(Root, "clients", "typescript", "build.sh"), pack], Root);
        Assert.True(build.ExitCode == 0, $"clients/typescript/build.sh failed: {build}");
        var tarball = build.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Last();
        Assert.True(File.Exists(tarball), $"build.sh printed no tarball path: {build}");
        var version = LaneQueueVersion();
        Assert.Equal($"lanequeue-client-{version}.tgz", Path.GetFileName(tarball));
        output.WriteLine($"built {tarball}");

        var app = Path.Combine(temp, "app");
        Directory.CreateDirectory(app);
        await File.WriteAllTextAsync(Path.Combine(app, "package.json"), """{ "name": "lanequeue-ts-client-check", "version": "0.0.0", "private": true }""" + "\n");
        var install = await RunAsync("npm", ["install", "--no-audit", "--no-fund", tarball], app);
        Assert.True(install.ExitCode == 0, $"npm install {tarball} failed: {install}");
        Assert.True(File.Exists(Path.Combine(app, "node_modules", "@lanequeue", "client", "dist", "esm", "index.js")), $"the package is not in {app}/node_modules: {install}");

        await TypeCheckAsync(app);

        var tests = Path.Combine(app, "test");
        Directory.CreateDirectory(tests);
        foreach (var file in Directory.GetFiles(Path.Combine(Root, "clients", "typescript", "test")))
            File.Copy(file, Path.Combine(tests, Path.GetFileName(file)));
        return app;
    }

    /// <summary>
    /// The shipped .d.ts files, as a TypeScript user resolves them through the package's <c>exports</c>: an ES module and a
    /// CommonJS file that import <c>@lanequeue/client</c> compile (strict, NodeNext), and a wrong lane is a type error. Uses
    /// the tsc that build.sh's <c>npm ci</c> installed in clients/typescript.
    /// </summary>
    async Task TypeCheckAsync(string app)
    {
        var typescript = Path.Combine(Root, "clients", "typescript", "node_modules");
        await File.WriteAllTextAsync(Path.Combine(app, "check.mts"), """
            import { LaneQueue, InvalidTaskError, validateTask, type TaskInput, type TaskResult } from '@lanequeue/client';
            const task: TaskInput = { id: 'a', lane: 'query', payload: {}, timeoutMs: 5000 };
            export const wait = (client: LaneQueue): Promise<TaskResult> => client.submitAndWait(task, 1000);
            export const field: string = new InvalidTaskError('id', 'x').field;
            validateTask(task);
            // @ts-expect-error a lane is one of control, query, execute, generate
            export const wrong: TaskInput = { id: 'a', lane: 'urgent', payload: {} };
            """);
        await File.WriteAllTextAsync(Path.Combine(app, "check.cts"), """
            import lq = require('@lanequeue/client');
            export const status: lq.TaskStatus = 'timed_out';
            export const connecting: Promise<lq.LaneQueue> = lq.LaneQueue.connect('amqp://localhost');
            """);
        await File.WriteAllTextAsync(Path.Combine(app, "tsconfig.json"), $$"""
            { "compilerOptions": { "module": "NodeNext", "moduleResolution": "NodeNext", "target": "ES2022", "strict": true, "noEmit": true,
                                   "types": ["node"], "typeRoots": [{{System.Text.Json.JsonSerializer.Serialize(Path.Combine(typescript, "@types"))}}] },
              "files": ["check.mts", "check.cts"] }
            """);
        var check = await RunAsync("node", [Path.Combine(typescript, "typescript", "bin", "tsc"), "-p", "tsconfig.json"], app);
        Assert.True(check.ExitCode == 0, $"the package's types do not compile for an ES module and a CommonJS user: {check}");
    }

    [Fact]
    public async Task The_client_test_suite_passes_against_the_installed_tarball_and_a_running_consumer()
    {
        var temp = Directory.CreateTempSubdirectory("lanequeue-ts-client-").FullName;
        await using var vhost = await broker.CreateVhostAsync();
        // No consumer ever runs here: no lane queue is bound, so a mandatory publish comes back.
        await using var empty = await broker.CreateVhostAsync();
        Microsoft.Extensions.Hosting.IHost? consumer = null;
        try
        {
            var app = await InstallAsync(temp);
            consumer = await ConsumerHost.StartAsync(vhost.Url, o => o.Queue = o.Queue with
            {
                // The External lane the client's worker takes tasks from; every other lane runs the built-in handlers.
                LaneHandlers = new() { [SessionLane.Execute] = new LaneHandlerConfig { Mode = TaskHandlerMode.External, TimeoutMs = 30_000 } },
                // One retry, soon: failing and timed-out tasks end in about a second.
                RetryPolicy = new RetryPolicy { MaxRetries = 1, InitialDelayMs = 50 },
            });

            var clock = Stopwatch.StartNew();
            var run = await RunAsync("node", ["--test", "--test-concurrency=1", "test/"], app, new Dictionary<string, string>
            {
                ["LANEQUEUE_RABBITMQ_URL"] = vhost.Url,
                ["LANEQUEUE_EMPTY_VHOST_URL"] = empty.Url,
                [BrokerFixture.ManagementUrlVariable] = broker.Management.BaseAddress!.ToString().TrimEnd('/'),
                ["LANEQUEUE_WIRE_CASES"] = Path.Combine(Root, "src", "Contracts", "wire-cases.json"),
                ["LANEQUEUE_VERSION"] = LaneQueueVersion(),
            });
            output.WriteLine($"node --test ({clock.ElapsedMilliseconds} ms): {run}");

            Assert.True(run.ExitCode == 0, $"the TypeScript client's tests failed: {run}");
            var passed = Regex.Match(run.Stdout, @"^# pass (\d+)$", RegexOptions.Multiline);
            var failed = Regex.Match(run.Stdout, @"^# fail (\d+)$", RegexOptions.Multiline);
            Assert.True(passed.Success && failed.Success, $"no summary from node --test: {run}");
            Assert.Equal("0", failed.Groups[1].Value);
            Assert.Matches(new Regex(@"^# skipped 0$", RegexOptions.Multiline), run.Stdout); // every test had what it needs
            // The broker tests, the unit and packaging tests and one test per shared wire case.
            Assert.True(int.Parse(passed.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) >= 80, $"too few tests ran: {run}");
        }
        finally
        {
            if (consumer is not null)
                await consumer.StopQuietlyAsync();
            try
            {
                Directory.Delete(temp, recursive: true);
            }
            catch (IOException)
            {
                // a leftover temp folder is harmless
            }
        }
    }
}
