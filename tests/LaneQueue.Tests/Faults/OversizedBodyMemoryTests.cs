using System.Globalization;
using System.Text;
using LaneQueue.Tests.Broker;
using LaneQueue.Tests.Integration;
using RabbitMQ.Client;
using Xunit.Abstractions;

namespace LaneQueue.Tests.Faults;

/// <summary>
/// Memory under oversized bodies, measured on a consumer process (<c>LaneQueue.TestWorker</c>, workstation GC) by its
/// resident set (<c>VmRSS</c> of <c>/proc/&lt;pid&gt;/status</c>), against a RabbitMQ node of its own started with
/// infra/rabbitmq's <c>max_message_size</c> (1,114,112 bytes). RSS is bounded only against a control measured in the same
/// test, on the same process: how far its settled RSS moves over a step of 40 small valid tasks (the noise of a .NET
/// process's RSS between two settled readings, a few MiB either way). Then 40 bodies of 5 MiB, each with a readable id:
/// <list type="number">
/// <item>with the broker's limit on, as configured: each publish is refused by the broker (channel closed, 406), nothing
/// reaches the consumer, and its RSS grows by less than the control step moved it plus <see cref="BrokerMarginMiB"/>
/// (asserted);</item>
/// <item>with the node's limit raised to RabbitMQ's default (128 MiB) at run time, so only the consumer's own length check
/// stands: each body is refused by its length before it is deserialized, answered and dead-lettered, and the consumer hands
/// the memory back once the burst is over (<c>MemoryTrim</c>: RabbitMQ.Client reads every body whole into a buffer from the
/// shared array pool and copies it into another to move it, and the pool keeps them; the trim takes them out of it): its
/// RSS grows by less than the control step moved it plus <see cref="ConsumerMarginMiB"/> (asserted).</item>
/// </list>
/// With <c>LANEQUEUE_EVIDENCE_DIR</c> set (relative to the repository), the numbers go to <c>wire-contract-memory.md</c> there;
/// docs/evidence/wire-contract-memory.md is such a file.
/// </summary>
[Collection(MemoryCollection.Name)]
public class OversizedBodyMemoryTests(ITestOutputHelper output)
{
    const int Bodies = 40;
    const int BodyBytes = 5 * 1024 * 1024;
    const int SettleSeconds = 10;

    /// <summary>
    /// What the broker step may add to the consumer's RSS beyond the control step's movement. Bodies that reached the
    /// consumer leave far more when the pool keeps their buffers: 30 to 50 MiB with a lane window of 8 and 131 to 225 MiB
    /// with 16 (the default since PrefetchPerLimit became 4), measured before <c>MemoryTrim</c> emptied the pool of them.
    /// </summary>
    const double BrokerMarginMiB = 16;

    /// <summary>
    /// What the consumer may keep, beyond the control step's movement, of the 200 MiB it refused itself: a few of the pool's
    /// buffers that other threads keep for themselves (one of a size per thread) are not the trim's to take.
    /// </summary>
    const double ConsumerMarginMiB = 24;

    static byte[] BigTask(string id)
    {
        var head = Encoding.UTF8.GetBytes("{\"id\":\"" + id + "\",\"lane\":\"query\",\"payload\":\"");
        var body = new byte[BodyBytes];
        head.CopyTo(body, 0);
        body.AsSpan(head.Length, BodyBytes - head.Length - 2).Fill((byte)'x');
        body[^2] = (byte)'"';
        body[^1] = (byte)'}';
        return body;
    }

    /// <summary>RSS after the process has been idle for <paramref name="settleSeconds"/> s: the lowest of a few readings.</summary>
    internal static async Task<double> SettledRssAsync(ConsumerProcess consumer, int settleSeconds = SettleSeconds)
    {
        await Task.Delay(TimeSpan.FromSeconds(settleSeconds));
        var readings = new List<double>();
        for (var i = 0; i < 5; i++)
        {
            readings.Add(consumer.RssMiB() ?? throw new InvalidOperationException($"the consumer exited:\n{consumer.Output}"));
            await Task.Delay(200);
        }
        return readings.Min();
    }

    [Fact]
    public async Task Oversized_bodies_are_refused_by_the_broker_and_the_consumer_RSS_stays_where_it_was()
    {
        await using var node = await FaultNode.StartAsync("lq-mem", 5741, options: _ => ["--conf", "max_message_size = 1114112"]);
        var vhost = await node.CreateVhostAsync("lq-mem");
        await using var consumer = await ConsumerProcess.StartAsync(node.Url(vhost), "mem-consumer");
        await using var listener = await ContractListener.StartAsync(node.Url(vhost));
        var factory = new ConnectionFactory { Uri = new Uri(node.Url(vhost)), ClientProvidedName = "lanequeue-test-big-publisher" };
        await using var connection = await factory.CreateConnectionAsync();

        async Task<Exception?> PublishAsync(byte[] body)
        {
            await using var channel = await connection.CreateChannelAsync(new CreateChannelOptions(true, true));
            try
            {
                await channel.BasicPublishAsync(BrokerNames.TasksExchange, "query", mandatory: true, new BasicProperties { ContentType = "application/json", Persistent = true }, body);
                return null;
            }
            catch (Exception ex) when (ex is RabbitMQ.Client.Exceptions.OperationInterruptedException or RabbitMQ.Client.Exceptions.AlreadyClosedException
                or RabbitMQ.Client.Exceptions.PublishException or ObjectDisposedException)
            {
                return ex;
            }
        }

        // Warm-up: the consumer at work (JIT, channels, pools), with bodies up to the limit.
        for (var i = 0; i < 100; i++)
            Assert.Null(await PublishAsync(Encoding.UTF8.GetBytes($$$"""{"id":"warm-{{{i}}}","lane":"query","payload":{"n":{{{i}}}}}""")));
        for (var i = 0; i < 10; i++)
            Assert.Null(await PublishAsync(Encoding.UTF8.GetBytes($$$"""{"id":"warm-big-{{{i}}}","lane":"query","payload":"{{{new string('w', 1_000_000)}}}"}""")));
        await TestVhost.EventuallyAsync(() => Task.FromResult(listener.Results.Count >= 110), "the warm-up results", 60);
        var before = await SettledRssAsync(consumer);

        // 0. The control: as many small valid tasks as there are oversized bodies below, settled and measured the same way.
        for (var i = 0; i < Bodies; i++)
            Assert.Null(await PublishAsync(Encoding.UTF8.GetBytes($$$"""{"id":"control-{{{i}}}","lane":"query","payload":{"n":{{{i}}}}}""")));
        Assert.True(await PublishAsync(Encoding.UTF8.GetBytes("""{"id":"after-control","lane":"query","payload":{}}""")) is null);
        await listener.SettledResultAsync("after-control");
        Assert.All(Enumerable.Range(0, Bodies), i => Assert.Single(listener.ResultsOf($"control-{i}")));
        var afterControl = await SettledRssAsync(consumer);
        var controlDrift = afterControl - before;
        var noise = Math.Abs(controlDrift);

        // 1. The broker's limit, as infra/rabbitmq/rabbitmq.conf sets it.
        var refused = new List<string>();
        for (var i = 0; i < Bodies; i++)
        {
            if (await PublishAsync(BigTask($"big-broker-{i}")) is { } ex)
                refused.Add(ex.Message);
        }
        Assert.True(await PublishAsync(Encoding.UTF8.GetBytes("""{"id":"after-broker","lane":"query","payload":{}}""")) is null);
        await listener.SettledResultAsync("after-broker");
        var afterBroker = await SettledRssAsync(consumer);
        output.WriteLine($"refused by the broker: {refused.Count}; first: {refused.FirstOrDefault()}");
        Assert.Equal(Bodies, refused.Count);
        Assert.All(refused, message => Assert.Contains("PRECONDITION_FAILED", message, StringComparison.Ordinal));
        Assert.DoesNotContain(listener.Results, r => r.TaskId.StartsWith("big-broker-", StringComparison.Ordinal));

        // 2. Only the consumer's own check: the node's limit raised to RabbitMQ's default (new channels read it).
        var raised = await node.CtlAsync("eval", "application:set_env(rabbit, max_message_size, 134217728).");
        Assert.True(raised.ExitCode == 0, raised.Output);
        for (var i = 0; i < Bodies; i++)
            Assert.Null(await PublishAsync(BigTask($"big-consumer-{i}")));
        await TestVhost.EventuallyAsync(() => Task.FromResult(Enumerable.Range(0, Bodies).All(i => listener.TerminalEventsOf($"big-consumer-{i}").Count > 0)),
            "an answer for every oversized body", 120);
        var afterConsumer = await SettledRssAsync(consumer);
        var result = listener.ResultsOf("big-consumer-0").Single();
        Assert.Equal($"body: {BodyBytes} bytes is over the limit of 1114112 bytes (payload limit + 64 KiB)", result.Error);
        Assert.All(Enumerable.Range(0, Bodies), i => Assert.Single(listener.ResultsOf($"big-consumer-{i}")));

        var brokerDrift = afterBroker - afterControl;
        var consumerDrift = afterConsumer - afterBroker;
        var summary = string.Create(CultureInfo.InvariantCulture,
            $"consumer RSS after warm-up {before:0.0} MiB; control, after {Bodies} small tasks {afterControl:0.0} MiB ({controlDrift:+0.0;-0.0} MiB); " +
            $"after {Bodies} x 5 MiB refused by the broker {afterBroker:0.0} MiB ({brokerDrift:+0.0;-0.0} MiB); " +
            $"after {Bodies} x 5 MiB refused by the consumer's length check {afterConsumer:0.0} MiB ({consumerDrift:+0.0;-0.0} MiB)");
        output.WriteLine(summary);
        WriteEvidence(before, afterControl, afterBroker, afterConsumer, refused.FirstOrDefault() ?? "");
        Assert.True(brokerDrift < noise + BrokerMarginMiB,
            $"the consumer grew by {brokerDrift:0.0} MiB though the broker refused every oversized body, against {controlDrift:+0.0;-0.0} MiB " +
            $"over the control step of {Bodies} small tasks (bound: {noise:0.0} + {BrokerMarginMiB} MiB). {summary}");
        Assert.True(consumerDrift < noise + ConsumerMarginMiB,
            $"the consumer kept {consumerDrift:0.0} MiB after refusing {Bodies} x 5 MiB itself (200 MiB in all), against {controlDrift:+0.0;-0.0} MiB " +
            $"over the control step (bound: {noise:0.0} + {ConsumerMarginMiB} MiB). {summary}");
    }

    static void WriteEvidence(double before, double afterControl, double afterBroker, double afterConsumer, string refusal)
    {
        if (Environment.GetEnvironmentVariable("LANEQUEUE_EVIDENCE_DIR") is not { Length: > 0 } dir)
            return;
        dir = Path.Combine(Repo.Root, dir); // a relative directory is the repository's
        Directory.CreateDirectory(dir);
        var text = string.Create(CultureInfo.InvariantCulture, $"""
            # Consumer memory under oversized bodies

            Written by `OversizedBodyMemoryTests` at {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm} UTC on `{Environment.MachineName}` ({Environment.ProcessorCount} CPUs).
            Command: `LANEQUEUE_EVIDENCE_DIR=docs/evidence dotnet test tests/LaneQueue.Tests -c Release --filter "FullyQualifiedName~OversizedBodyMemoryTests"`

            How: one consumer process (`LaneQueue.TestWorker`, workstation GC) on a throw-away RabbitMQ node (`scripts/broker-node.sh`)
            started with `max_message_size = 1114112` (infra/rabbitmq/rabbitmq.conf); RSS is `VmRSS` of `/proc/<pid>/status`, the lowest
            of five readings after {SettleSeconds} s idle. Warm-up: 100 small tasks and 10 tasks with a 1 MB payload. Control: {Bodies} small
            valid tasks, measured the same way (how far a settled RSS moves with no oversized body at all). Then {Bodies} bodies of
            5 MiB (5,242,880 bytes), each a task with a readable id, published to the query lane.

            | step | consumer RSS | change from the step before |
            |---|---|---|
            | after the warm-up | {before:0.0} MiB | |
            | control: {Bodies} small tasks | {afterControl:0.0} MiB | {afterControl - before:+0.0;-0.0} MiB |
            | {Bodies} x 5 MiB, refused by the broker (`max_message_size`) | {afterBroker:0.0} MiB | {afterBroker - afterControl:+0.0;-0.0} MiB |
            | {Bodies} x 5 MiB more, node limit raised to 128 MiB: refused by the consumer's length check, answered, dead-lettered | {afterConsumer:0.0} MiB | {afterConsumer - afterBroker:+0.0;-0.0} MiB |

            Asserted, against the control's change c: the broker step grows the RSS by less than |c| + {BrokerMarginMiB} MiB, the
            consumer's step by less than |c| + {ConsumerMarginMiB} MiB.

            The broker's refusal, as the publisher saw it: `{refusal.Replace('`', '\'')}`

            The memory is handed back by `MemoryTrim` 2 s after the last oversized body: RabbitMQ.Client read each body whole into
            a buffer from `ArrayPool<byte>.Shared` (a 5 MiB body takes an 8 MiB array) and copied each into another to move it to
            the dead-letter queue, and the pool keeps the buffers it is given back; the trim takes the pool's idle buffers of those
            sizes out of it, then runs one compacting collection. Without that step the last row kept 30 to 50 MiB with a lane
            window of 8 and 131 to 225 MiB with 16 (the query lane's default window: `PrefetchPerLimit` 4 x its limit of 4).

            """);
        File.WriteAllText(Path.Combine(dir, "wire-contract-memory.md"), text);
    }
}

/// <summary>Memory measurements: never in parallel with other tests, so the numbers are the consumer's, not the machine's.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class MemoryCollection
{
    public const string Name = "memory";
}
