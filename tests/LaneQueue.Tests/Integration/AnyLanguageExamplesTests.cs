using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using LaneQueue.Consumer;
using LaneQueue.Contracts;
using LaneQueue.Tests.Broker;
using Xunit.Abstractions;

namespace LaneQueue.Tests.Integration;

/// <summary>
/// The examples in <c>examples/</c> (Python with pika, Node with amqplib, curl against the management API) run as child
/// processes against a real broker and an in-process consumer on a fresh vhost: each submits a task, reads its result,
/// and exits 0 only when the task succeeded. A missing interpreter or library fails the test with how to install it.
/// </summary>
[Collection(BrokerCollection.Name)]
public class AnyLanguageExamplesTests(BrokerFixture broker, ITestOutputHelper output)
{
    const string InstallHint = "run 'bash scripts/install-example-deps.sh' (as root: apt-get install python3-pika curl jq; npm ci in examples/node)";

    static readonly string Root = Faults.Repo.Root;

    /// <summary>The result an example printed as its last line (JSON).</summary>
    static JsonElement ResultOf(ChildProcess.Result run)
    {
        var line = run.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).LastOrDefault()
            ?? throw new Xunit.Sdk.XunitException($"the example printed no result. stderr: {run.Stderr}");
        using var doc = JsonDocument.Parse(line);
        return doc.RootElement.Clone();
    }

    static Task<ChildProcess.Result> RunAsync(string fileName, IEnumerable<string> arguments, IDictionary<string, string> environment, int timeoutSeconds = 90) =>
        ChildProcess.RunAsync(fileName, arguments, Root, environment.Select(kv => new KeyValuePair<string, string?>(kv.Key, kv.Value)), timeoutSeconds);

    static async Task<bool> SucceedsAsync(string fileName, params string[] arguments)
    {
        try
        {
            return (await RunAsync(fileName, arguments, new Dictionary<string, string>(), 30)).ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false; // not installed
        }
    }

    /// <summary>A python with pika: <c>LANEQUEUE_PYTHON</c>, else <c>python3</c> on PATH, else Debian's <c>/usr/bin/python3</c> (where python3-pika installs).</summary>
    static async Task<string> PythonWithPikaAsync()
    {
        string?[] candidates = [Environment.GetEnvironmentVariable("LANEQUEUE_PYTHON"), "python3", "/usr/bin/python3"];
        foreach (var python in candidates.OfType<string>().Where(c => c.Length > 0).Distinct())
        {
            if (await SucceedsAsync(python, "-c", "import pika"))
                return python;
        }
        Assert.Fail($"The Python example needs python3 with pika, and none of {string.Join(", ", candidates.OfType<string>())} has it: {InstallHint}; " +
                    "or set LANEQUEUE_PYTHON to a python that has pika (pip install pika).");
        return "";
    }

    static async Task<(string File, string[] Arguments)> CommandAsync(string language) => language switch
    {
        "python" => (await PythonWithPikaAsync(), [Path.Combine(Root, "examples", "python", "submit_task.py")]),
        "node" => await NodeAsync(),
        "curl" => await CurlAsync(),
        _ => throw new ArgumentOutOfRangeException(nameof(language)),
    };

    static async Task<(string, string[])> NodeAsync()
    {
        if (!await SucceedsAsync("node", "--version"))
            Assert.Fail($"The Node example needs node (Node.js 18+) on PATH: install Node.js, then {InstallHint}.");
        if (!File.Exists(Path.Combine(Root, "examples", "node", "node_modules", "amqplib", "package.json")))
            Assert.Fail($"The Node example needs amqplib in examples/node/node_modules: {InstallHint}.");
        return ("node", [Path.Combine(Root, "examples", "node", "submit-task.js")]);
    }

    static async Task<(string, string[])> CurlAsync()
    {
        if (!await SucceedsAsync("bash", "-c", "command -v curl && command -v jq"))
            Assert.Fail($"The curl example needs bash, curl and jq on PATH: {InstallHint}.");
        return ("bash", [Path.Combine(Root, "examples", "curl", "submit-task.sh")]);
    }

    async Task<ChildProcess.Result> RunExampleAsync(string language, TestVhost vhost, params string[] arguments)
    {
        var (file, script) = await CommandAsync(language);
        var environment = new Dictionary<string, string>
        {
            [LaneQueue.Producer.BrokerConnection.UrlVariable] = vhost.Url,
            [BrokerFixture.ManagementUrlVariable] = broker.Management.BaseAddress!.ToString().TrimEnd('/'),
        };
        var clock = Stopwatch.StartNew();
        var run = await RunAsync(file, script.Concat(arguments), environment);
        output.WriteLine($"{language} {string.Join(' ', arguments)} ({clock.ElapsedMilliseconds} ms): {run}");
        return run;
    }

    /// <summary>Tasks the consumer ran: its default handler notes each and echoes the payload.</summary>
    sealed class Ran
    {
        public ConcurrentDictionary<string, SessionLane> Tasks { get; } = new(StringComparer.Ordinal);

        public void Register(LaneQueueConsumerBuilder consumer) => consumer
            .AddHandler("record", context =>
            {
                Tasks[context.Task.Id] = context.Task.Lane;
                return Task.FromResult<object?>(context.Task.Payload);
            })
            .DefaultHandler("record");
    }

    public static TheoryData<string> Languages() => ["python", "node", "curl"];

    [Theory]
    [MemberData(nameof(Languages))]
    public async Task Example_submits_a_task_prints_its_successful_result_and_exits_0(string language)
    {
        await using var vhost = await broker.CreateVhostAsync();
        var ran = new Ran();
        var consumer = await ConsumerHost.StartAsync(vhost.Url, handlers: ran.Register);
        try
        {
            var id = $"{language}-ok";
            var run = await RunExampleAsync(language, vhost, "--lane", "execute", "--id", id, "--payload", $$"""{"from":"{{language}}","text":"é€😀","n":[1,2]}""");

            Assert.True(run.ExitCode == 0, run.ToString());
            var result = ResultOf(run);
            Assert.Equal(id, result.GetProperty("task_id").GetString());
            Assert.True(result.GetProperty("success").GetBoolean(), run.ToString());
            Assert.Equal("completed", result.GetProperty("status").GetString());
            Assert.Equal("execute", result.GetProperty("lane").GetString());
            Assert.Equal(language, result.GetProperty("result").GetProperty("from").GetString());
            Assert.Equal("é€😀", result.GetProperty("result").GetProperty("text").GetString());
            Assert.True(ran.Tasks.TryGetValue(id, out var lane), $"the consumer never ran task {id}");
            Assert.Equal(SessionLane.Execute, lane);
        }
        finally
        {
            await consumer.StopQuietlyAsync();
        }
    }

    [Theory]
    [MemberData(nameof(Languages))]
    public async Task Example_submits_a_delayed_task_and_a_dedup_key(string language)
    {
        await using var vhost = await broker.CreateVhostAsync();
        var ran = new Ran();
        var consumer = await ConsumerHost.StartAsync(vhost.Url, handlers: ran.Register);
        try
        {
            // delay_ms: the consumer parks the task in the delay tree; it starts no earlier than 3 s after the example was launched.
            var launched = DateTimeOffset.UtcNow;
            var run = await RunExampleAsync(language, vhost, "--lane", "query", "--id", $"{language}-later", "--delay-ms", "3000");
            Assert.True(run.ExitCode == 0, run.ToString());
            var waited = ResultOf(run).GetProperty("started_at").GetDateTimeOffset() - launched;
            Assert.True(waited >= TimeSpan.FromMilliseconds(3000), $"started {waited.TotalMilliseconds:0} ms after the example was launched");

            // dedup_key: the second task with the key is answered duplicate (exit 5), naming the first.
            Assert.Equal(0, (await RunExampleAsync(language, vhost, "--lane", "query", "--id", $"{language}-k1", "--dedup-key", $"{language}-key")).ExitCode);
            run = await RunExampleAsync(language, vhost, "--lane", "query", "--id", $"{language}-k2", "--dedup-key", $"{language}-key");
            Assert.True(run.ExitCode == 5, run.ToString());
            Assert.Contains($"{language}-k1", run.ToString());
            Assert.False(ran.Tasks.ContainsKey($"{language}-k2"));
        }
        finally
        {
            await consumer.StopQuietlyAsync();
        }
    }

    [Theory]
    [MemberData(nameof(Languages))]
    public async Task Example_works_with_the_priority_queue_topology(string language)
    {
        await using var vhost = await broker.CreateVhostAsync();
        var ran = new Ran();
        var consumer = await ConsumerHost.StartAsync(vhost.Url, o => o.Topology = LaneTopology.PriorityQueue, ran.Register);
        try
        {
            var run = await RunExampleAsync(language, vhost, "--lane", "control", "--id", $"{language}-priority");
            Assert.True(run.ExitCode == 0, run.ToString());
            Assert.True(ResultOf(run).GetProperty("success").GetBoolean());
            Assert.Equal(SessionLane.Control, ran.Tasks[$"{language}-priority"]);
        }
        finally
        {
            await consumer.StopQuietlyAsync();
        }
    }

    [Theory]
    [MemberData(nameof(Languages))]
    public async Task Example_exits_5_when_the_task_fails(string language)
    {
        await using var vhost = await broker.CreateVhostAsync();
        var consumer = await ConsumerHost.StartAsync(vhost.Url);
        try
        {
            var run = await RunExampleAsync(language, vhost, "--lane", "query", "--id", $"{language}-fails", "--command-type", "fail");
            Assert.True(run.ExitCode == 5, run.ToString());
            var result = ResultOf(run);
            Assert.False(result.GetProperty("success").GetBoolean());
            Assert.Equal("the fail handler always fails", result.GetProperty("error").GetString());
        }
        finally
        {
            await consumer.StopQuietlyAsync();
        }
    }

    [Theory]
    [MemberData(nameof(Languages))]
    public async Task Example_exits_4_when_no_result_arrives_in_time(string language)
    {
        await using var vhost = await broker.CreateVhostAsync();
        // A consumer declares the lane queues, then stops: the task is stored but nobody runs it.
        await (await ConsumerHost.StartAsync(vhost.Url)).StopQuietlyAsync();

        var run = await RunExampleAsync(language, vhost, "--lane", "generate", "--id", $"{language}-waits", "--timeout", "2");

        Assert.True(run.ExitCode == 4, run.ToString());
        Assert.Contains("no result", run.Stderr, StringComparison.Ordinal);
        await using var client = await RawClient.ConnectAsync(vhost.Url);
        Assert.Equal(1u, await client.CountAsync(BrokerNames.LaneQueue(SessionLane.Generate)));
    }

    [Theory]
    [MemberData(nameof(Languages))]
    public async Task Example_exits_3_when_no_lane_queue_would_take_the_task(string language)
    {
        // A fresh vhost where no consumer ever declared the lane queues: the broker returns the mandatory publish.
        await using var vhost = await broker.CreateVhostAsync();
        var run = await RunExampleAsync(language, vhost, "--lane", "query", "--id", $"{language}-unroutable", "--timeout", "5");
        Assert.True(run.ExitCode == 3, run.ToString());
        Assert.Contains("not routed", run.Stderr, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(Languages))]
    public async Task Example_exits_2_on_bad_arguments(string language)
    {
        await using var vhost = await broker.CreateVhostAsync();
        Assert.Equal(2, (await RunExampleAsync(language, vhost, "--lane", "query", "--payload", "not json")).ExitCode);
        Assert.Equal(2, (await RunExampleAsync(language, vhost, "--lane", "urgent")).ExitCode);
    }
}
