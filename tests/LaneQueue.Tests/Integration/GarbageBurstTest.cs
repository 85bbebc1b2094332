using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using LaneQueue.Consumer;
using LaneQueue.Contracts;
using LaneQueue.Tests.Broker;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using Xunit.Abstractions;

namespace LaneQueue.Tests.Integration;

/// <summary>
/// 10,000 garbage messages of every kind mixed with 500 valid tasks over all four lanes, against a real broker and one
/// in-process consumer: every valid task completes, every garbage message lands in its lane's dead-letter queue with a
/// contract reason, every garbage message whose id can be read gets exactly one failed result (docs/wire-contract.md §6),
/// none is lost or doubled, and the consumer's memory stays flat.
/// </summary>
[Collection(BrokerCollection.Name)]
public class GarbageBurstTest(BrokerFixture broker, ITestOutputHelper output)
{
    const int Garbage = 10_000;
    const int Valid = 500;
    const int MaxPayloadBytes = 4096;

    static readonly string[] ContractFields = ["body", "id", "lane", "payload", "command_type", "session_id", "timeout_ms", "created_at"];

    sealed record Message(string RoutingKey, byte[] Body, BasicProperties Properties, string? ValidId);

    static Message Make(Random random, int index)
    {
        var lanes = SessionLanes.All.Select(l => l.WireName()).ToArray();
        var lane = lanes[random.Next(lanes.Length)];
        var other = lanes.First(l => l != lane);
        var properties = new BasicProperties { ContentType = "application/json", Persistent = true };
        if (random.Next(10) == 0)
        {
            properties.Headers = new Dictionary<string, object?>
            {
                ["x-junk"] = new string('j', random.Next(1, 2000)),
                ["x-table"] = new Dictionary<string, object?> { ["n"] = random.Next(), ["list"] = new List<object?> { 1, "a", null } },
                ["traceparent"] = "00-not-a-trace",
            };
        }
        if (random.Next(200) == 0)
            (properties.Headers ??= new Dictionary<string, object?>())["x-huge"] = new string('h', 100 * 1024);

        string? body = null;
        byte[]? bytes = null;
        switch (random.Next(16))
        {
            case 0:
                bytes = new byte[random.Next(0, 200)];
                random.NextBytes(bytes);
                break;
            case 1:
                body = new[] { "[1,2]", "42", "\"task\"", "null", "true", "{}" }[random.Next(6)];
                break;
            case 2:
                body = new[]
                {
                    $$$"""{"lane":"{{{lane}}}","payload":{}}""", $$$"""{"id":"","lane":"{{{lane}}}","payload":{}}""", $$$"""{"id":{{{index}}},"lane":"{{{lane}}}","payload":{}}""",
                }[random.Next(3)];
                break;
            case 3:
                body = new[]
                {
                    $$$"""{"id":"g {{{index}}}","lane":"{{{lane}}}","payload":{}}""", $$$"""{"id":"{{{new string('g', 201)}}}","lane":"{{{lane}}}","payload":{}}""",
                    $$$"""{"id":"g{{{index}}}\n","lane":"{{{lane}}}","payload":{}}""",
                }[random.Next(3)];
                break;
            case 4:
                body = new[] { $$$"""{"id":"g{{{index}}}","lane":"urgent","payload":{}}""", $$$"""{"id":"g{{{index}}}","lane":"{{{lane.ToUpperInvariant()}}}","payload":{}}""" }[random.Next(2)];
                break;
            case 5:
                body = $$$"""{"id":"g{{{index}}}","lane":"{{{other}}}","payload":{}}""";
                break;
            case 6:
                body = $$$"""{"id":"g{{{index}}}","lane":"{{{lane}}}"}""";
                break;
            case 7:
                body = $$$"""{"id":"g{{{index}}}","lane":"{{{lane}}}","payload":"{{{new string('p', MaxPayloadBytes)}}}"}""";
                break;
            case 8:
                body = new[]
                {
                    $$$"""{"id":"g{{{index}}}","lane":"{{{lane}}}","payload":{},"timeout_ms":-1}""", $$$"""{"id":"g{{{index}}}","lane":"{{{lane}}}","payload":{},"timeout_ms":"soon"}""",
                    $$$"""{"id":"g{{{index}}}","lane":"{{{lane}}}","payload":{},"created_at":"yesterday"}""",
                }[random.Next(3)];
                break;
            case 9:
                body = $$$"""{"id":"g{{{index}}}","lane":"{{{lane}}}","payload":{},"id":"again"}""";
                break;
            case 10:
                bytes = random.Next(2) == 0
                    ? [.. Encoding.UTF8.GetBytes($$$"""{"id":"g{{{index}}}","lane":"{{{lane}}}","payload":"""), 0xc3, 0x28, .. "}"u8]
                    : Encoding.UTF8.GetBytes($$$"""{"id":"g\ud800{{{index}}}","lane":"{{{lane}}}","payload":{}}""");
                break;
            case 11:
                properties.ContentType = "application/vnd.masstransit+json";
                body = new[]
                {
                    $$$$"""{"messageType":["urn:message:Other:Thing"],"message":{"id":"g{{{{index}}}}","lane":"{{{{lane}}}}","payload":{}}}""",
                    $$$"""{"id":"g{{{index}}}","lane":"{{{lane}}}","payload":{}}""",
                    $$$"""{"messageType":["urn:message:LaneQueue.Contracts:ExternalTask"],"message":{"id":"g{{{index}}}","lane":"{{{lane}}}"}}""",
                }[random.Next(3)];
                break;
            case 12:
                body = $$$"""{"id":"g{{{index}}}","lane":"{{{lane}}}","payload":{},"command_type":"no-such-handler"}""";
                break;
            case 13:
                properties.ContentType = random.Next(2) == 0 ? "application/xml" : "text/plain";
                body = properties.ContentType == "text/plain" ? $"run task {index}" : $"<task id=\"g{index}\"/>";
                break;
            case 14:
                body = "{\"id\":\"g" + index + "\",\"lane\":\"" + lane + "\",\"payload\":" + new string('[', 80) + new string(']', 80) + "}";
                break;
            default:
                body = $$$"""{"id":"g{{{index}}}","lane":"{{{lane}}}","payload":{},"session_id":{"not":"a string"}}""";
                break;
        }
        return new Message(lane, bytes ?? Encoding.UTF8.GetBytes(body!), properties, null);
    }

    /// <summary>The id a garbage message is answered under, or null when it has none that can be read.</summary>
    static string? AnswerId(Message message) => message.ValidId is null ? TaskIdentity.Read(message.Body)?.Id : null;

    static void Count(ConcurrentDictionary<string, (int Count, bool Success)> results, string id, bool success)
    {
        results.AddOrUpdate(id, (1, success), (_, seen) => (seen.Count + 1, seen.Success || success));
    }

    static Message MakeValid(Random random, string id)
    {
        var lane = SessionLanes.All[random.Next(SessionLanes.All.Count)].WireName();
        var body = $$$"""{"id":"{{{id}}}","lane":"{{{lane}}}","payload":{"n":{{{random.Next()}}}}}""";
        return new Message(lane, Encoding.UTF8.GetBytes(body), new BasicProperties { ContentType = "application/json", Persistent = true }, id);
    }

    /// <summary>A consumer like ConsumerHost's, but quiet: 10,000 rejections would otherwise be 20,000 log lines.</summary>
    static async Task<IHost> StartQuietConsumerAsync(string url)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Error)
            .AddFilter("MassTransit", LogLevel.Critical).AddFilter("LaneQueue", LogLevel.Error);
        builder.AddLaneQueueConsumer(o =>
        {
            o.RabbitMqUrl = url;
            o.ConsumerName = "burst-consumer";
            o.MaxPayloadBytes = MaxPayloadBytes;
            o.ShutdownTimeoutSeconds = 10;
            o.SlotBudget = 32;
            o.Queue = new SessionQueueConfig { ControlMaxConcurrency = 8, QueryMaxConcurrency = 8, ExecuteMaxConcurrency = 8, GenerateMaxConcurrency = 8 };
        });
        var host = builder.Build();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await host.StartAsync(timeout.Token);
        return host;
    }

    static async Task PublishAllAsync(IChannel channel, IEnumerable<Message> messages)
    {
        foreach (var chunk in messages.Chunk(250))
        {
            await Task.WhenAll(chunk.Select(m =>
                channel.BasicPublishAsync(BrokerNames.TasksExchange, m.RoutingKey, mandatory: true, m.Properties, m.Body).AsTask()));
        }
    }

    static (long Managed, long WorkingSet) Memory()
    {
        for (var i = 0; i < 3; i++)
        {
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
            GC.WaitForPendingFinalizers();
        }
        using var process = Process.GetCurrentProcess();
        return (GC.GetTotalMemory(forceFullCollection: true), process.WorkingSet64);
    }

    static string Mb(long bytes) => $"{bytes / 1024.0 / 1024.0:0.0} MB";

    [Fact]
    public async Task Ten_thousand_garbage_messages_mixed_with_valid_tasks_all_dead_lettered_none_lost_memory_flat()
    {
        await using var vhost = await broker.CreateVhostAsync();
        var consumer = await StartQuietConsumerAsync(vhost.Url);
        try
        {
            var factory = new ConnectionFactory { Uri = new Uri(vhost.Url), ClientProvidedName = "burst-producer" };
            await using var connection = await factory.CreateConnectionAsync();
            await using var publish = await connection.CreateChannelAsync(new CreateChannelOptions(true, true));

            // Results: a queue of our own bound to every task id.
            await using var resultsChannel = await connection.CreateChannelAsync();
            var resultsQueue = (await resultsChannel.QueueDeclareAsync("", durable: false, exclusive: true, autoDelete: true)).QueueName;
            await resultsChannel.QueueBindAsync(resultsQueue, BrokerNames.ResultsExchange, "#");
            var results = new ConcurrentDictionary<string, (int Count, bool Success)>(StringComparer.Ordinal);
            var resultConsumer = new AsyncEventingBasicConsumer(resultsChannel);
            resultConsumer.ReceivedAsync += (_, delivery) =>
            {
                using var doc = System.Text.Json.JsonDocument.Parse(delivery.Body);
                Count(results, doc.RootElement.GetProperty("task_id").GetString()!, doc.RootElement.GetProperty("success").GetBoolean());
                return Task.CompletedTask;
            };
            await resultsChannel.BasicConsumeAsync(resultsQueue, autoAck: true, resultConsumer);

            async Task<long> DeadLetteredAsync()
            {
                long total = 0;
                foreach (var lane in SessionLanes.All)
                {
                    await using var probe = await connection.CreateChannelAsync();
                    try
                    {
                        total += (await probe.QueueDeclarePassiveAsync(TestVhost.DeadLetters(lane))).MessageCount;
                    }
                    catch (RabbitMQ.Client.Exceptions.OperationInterruptedException)
                    {
                        // not created yet: nothing dead-lettered in that lane so far
                    }
                }
                return total;
            }

            // Warm up (JIT, channels, error queues) so the memory baseline is the consumer at work, not at rest.
            var random = new Random(6);
            var warmGarbage = Enumerable.Range(0, 200).Select(i => Make(random, -1 - i)).ToList();
            var warmValid = Enumerable.Range(0, 20).Select(i => MakeValid(random, $"warm-{i}")).ToList();
            await PublishAllAsync(publish, warmGarbage.Concat(warmValid));
            await TestVhost.EventuallyAsync(async () => await DeadLetteredAsync() == warmGarbage.Count && warmValid.All(v => results.ContainsKey(v.ValidId!)),
                "the warm-up messages to be accounted for", 60);
            foreach (var lane in SessionLanes.All)
                await publish.QueuePurgeAsync(TestVhost.DeadLetters(lane));
            results.Clear();
            var before = Memory();

            // The burst: 10,000 garbage messages and 500 valid tasks, shuffled.
            var messages = Enumerable.Range(0, Garbage).Select(i => Make(random, i))
                .Concat(Enumerable.Range(0, Valid).Select(i => MakeValid(random, $"valid-{i}")))
                .OrderBy(_ => random.Next()).ToList();
            var validIds = messages.Where(m => m.ValidId is not null).Select(m => m.ValidId!).ToHashSet();
            var answerIds = messages.Select(AnswerId).OfType<string>().ToList();
            var tried = messages.Count;
            var clock = Stopwatch.StartNew();
            await PublishAllAsync(publish, messages);
            var published = clock.Elapsed;
            messages = null; // measure the consumer, not the test's own copy of what it sent

            // Wait while the consumer makes progress: a loaded CI machine is slow, a stuck consumer makes none. Give up after
            // 30 s without a single new dead letter or result (or 5 minutes in all), then count what is missing below.
            long deadLettered = 0;
            var progressed = DateTime.UtcNow;
            var (lastDead, lastResults) = (-1L, -1);
            var cap = DateTime.UtcNow.AddMinutes(5);
            while (DateTime.UtcNow - progressed < TimeSpan.FromSeconds(30) && DateTime.UtcNow < cap)
            {
                deadLettered = await DeadLetteredAsync();
                if (deadLettered >= Garbage && validIds.All(results.ContainsKey) && answerIds.All(results.ContainsKey))
                    break;
                if (deadLettered != lastDead || results.Count != lastResults)
                    (progressed, lastDead, lastResults) = (DateTime.UtcNow, deadLettered, results.Count);
                await Task.Delay(250);
            }
            var processed = clock.Elapsed;
            var after = Memory();

            var completed = validIds.Count(id => results.TryGetValue(id, out var ok) && ok.Success);
            var answeredOnce = answerIds.Count(id => results.TryGetValue(id, out var seen) && seen is (1, false));
            var lost = tried - completed - deadLettered;
            var laneLeft = 0u;
            foreach (var lane in SessionLanes.All)
            {
                await using var probe = await connection.CreateChannelAsync();
                laneLeft += (await probe.QueueDeclarePassiveAsync(BrokerNames.LaneQueue(lane))).MessageCount;
            }
            var summary =
                $"tried {tried} ({Garbage} garbage + {Valid} valid); completed {completed}; dead-lettered {deadLettered}; lost {lost}; " +
                $"garbage with a readable id {answerIds.Count}, answered once with a failed result {answeredOnce}; " +
                $"left in lane queues {laneLeft}; published in {published.TotalSeconds:0.0} s, all accounted for in {processed.TotalSeconds:0.0} s " +
                $"({tried / processed.TotalSeconds:0} msg/s); managed heap {Mb(before.Managed)} -> {Mb(after.Managed)}, " +
                $"working set {Mb(before.WorkingSet)} -> {Mb(after.WorkingSet)}";
            output.WriteLine(summary);

            // Every dead letter names a field of the contract.
            var reasons = new ConcurrentDictionary<string, int>(StringComparer.Ordinal);
            long drained = 0, withoutContractReason = 0;
            foreach (var lane in SessionLanes.All)
            {
                while (await publish.BasicGetAsync(TestVhost.DeadLetters(lane), autoAck: true) is { } letter)
                {
                    drained++;
                    var reason = letter.BasicProperties.Headers?.TryGetValue(BrokerNames.ReasonHeader, out var value) == true ? RawClient.HeaderText(value) : "";
                    var field = reason.Split(':', 2)[0];
                    if (!ContractFields.Contains(field))
                    {
                        withoutContractReason++;
                        output.WriteLine($"not a contract reason: {reason}");
                    }
                    reasons.AddOrUpdate(field, 1, (_, n) => n + 1);
                }
            }
            output.WriteLine("dead letters by field: " + string.Join(", ", reasons.OrderByDescending(r => r.Value).Select(r => $"{r.Key} {r.Value}")));

            Assert.True(completed == Valid, $"{Valid - completed} valid tasks did not complete. {summary}");
            Assert.True(deadLettered == Garbage, $"dead-lettered {deadLettered} of {Garbage} garbage messages. {summary}");
            Assert.True(lost == 0 && laneLeft == 0, $"lost {lost}, {laneLeft} left in the lane queues. {summary}");
            Assert.True(drained == Garbage, $"drained {drained} dead letters, expected {Garbage}. {summary}");
            Assert.True(withoutContractReason == 0, $"{withoutContractReason} dead letters without a contract reason in {BrokerNames.ReasonHeader}. {summary}");
            Assert.DoesNotContain(results, r => r.Value.Success && !validIds.Contains(r.Key));
            Assert.True(answerIds.Count == answerIds.Distinct().Count(), "the generator gave two garbage messages the same readable id");
            Assert.True(answeredOnce == answerIds.Count, $"{answerIds.Count - answeredOnce} garbage messages with a readable id did not get exactly one failed result. {summary}");
            Assert.True(after.Managed - before.Managed < 64L * 1024 * 1024, $"managed heap grew by {Mb(after.Managed - before.Managed)}. {summary}");
            Assert.True(after.WorkingSet - before.WorkingSet < 256L * 1024 * 1024, $"working set grew by {Mb(after.WorkingSet - before.WorkingSet)}. {summary}");
        }
        finally
        {
            await consumer.StopQuietlyAsync();
        }
    }
}
