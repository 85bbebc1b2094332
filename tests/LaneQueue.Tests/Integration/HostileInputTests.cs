using System.Text;
using LaneQueue.Consumer;
using LaneQueue.Contracts;
using LaneQueue.Producer;
using LaneQueue.Tests.Broker;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;
using Xunit.Abstractions;

namespace LaneQueue.Tests.Integration;

/// <summary>
/// Messages that break the wire contract, published by a plain AMQP client against a real broker and an in-process
/// consumer: each lands in the lane's dead-letter queue, byte for byte, with a reason in <c>MT-Fault-Message</c>; none
/// is acked as a success, none is lost, none stays in (or loops through) the lane queue, and the consumer keeps going.
/// Each case also says what the sender gets (docs/wire-contract.md §6): a message whose id can be read gets exactly one
/// <c>failed</c> result with the reason as its error and one <c>command.dead_lettered</c> event; one without a readable id
/// gets no result and no event.
/// </summary>
[Collection(BrokerCollection.Name)]
public class HostileInputTests(BrokerFixture broker, ITestOutputHelper output)
{
    /// <param name="AnswerId">The id the result goes to, or null when the id cannot be read (no result, no event).</param>
    /// <param name="AnswerLane">The lane of that result: the task's own when readable, else the routing key's.</param>
    public sealed record Garbage(string RoutingKey, byte[] Body, string? ContentType, string Reason, string? AnswerId = null, SessionLane AnswerLane = SessionLane.Query)
    {
        public string? ContentEncoding { get; init; }
    }

    static Garbage Json(string body, string reason, string routingKey = "query", string? contentType = "application/json", string? answer = null,
        SessionLane lane = SessionLane.Query) =>
        new(routingKey, Encoding.UTF8.GetBytes(body), contentType, reason, answer, lane);

    static byte[] Gzip(string text)
    {
        using var buffer = new MemoryStream();
        using (var gzip = new System.IO.Compression.GZipStream(buffer, System.IO.Compression.CompressionLevel.Fastest))
            gzip.Write(Encoding.UTF8.GetBytes(text));
        return buffer.ToArray();
    }

    internal static readonly Dictionary<string, Garbage> Cases = new()
    {
        ["not JSON"] = Json("this is not json", "body: not valid JSON"),
        ["truncated JSON"] = Json("""{"id":"t1","lane":"query","payload":{""", "body: not valid JSON"),
        ["empty body"] = Json("", "body: not valid JSON"),
        ["invalid UTF-8"] = new("query", [.. "{\"id\":\"a"u8, 0xff, 0xfe, .. "\",\"lane\":\"query\",\"payload\":{}}"u8], "application/json", "body: not valid UTF-8"),
        ["JSON array"] = Json("[1,2,3]", "body: expected a JSON object, got an array"),
        ["JSON string"] = Json("\"a task\"", "body: expected a JSON object, got a string"),
        ["JSON number"] = Json("42", "body: expected a JSON object, got a number"),
        ["JSON null"] = Json("null", "body: expected a JSON object, got null"),
        ["missing id"] = Json("""{"lane":"query","payload":{}}""", "id: missing"),
        ["empty id"] = Json("""{"id":"","lane":"query","payload":{}}""", "id: missing or empty"),
        ["over-long id"] = Json($$$"""{"id":"{{{new string('i', 201)}}}","lane":"query","payload":{}}""", "id: 201 characters is over the limit of 200"),
        ["id with a trailing newline"] = Json("""{"id":"abc\n","lane":"query","payload":{}}""", "id: "),
        ["id with an unpaired surrogate"] = Json("""{"id":"a\ud800","lane":"query","payload":{}}""", "id: "),
        ["numeric id"] = Json("""{"id":7,"lane":"query","payload":{}}""", "id: must be a string, got a number"),
        ["unknown lane"] = Json("""{"id":"u1","lane":"urgent","payload":{}}""", "lane: 'urgent' is not a lane", answer: "u1"),
        ["lane in the wrong case"] = Json("""{"id":"u2","lane":"Query","payload":{}}""", "lane: 'Query' is not a lane (lane names are lower case)", answer: "u2"),
        ["lane other than the routing key"] = Json("""{"id":"u3","lane":"execute","payload":{}}""", "lane: the task says 'execute' but was routed to queue 'lanequeue.query'",
            answer: "u3", lane: SessionLane.Execute),
        ["payload missing"] = Json("""{"id":"p1","lane":"query"}""", "payload: missing", answer: "p1"),
        ["payload with an unpaired surrogate"] = Json("""{"id":"s1","lane":"query","payload":{"s":"\ud800"}}""",
            "payload: not valid Unicode text: a string or key holds an unpaired surrogate escape such as \\ud800", answer: "s1"),
        ["payload key with an unpaired surrogate"] = Json("""{"id":"s2","lane":"query","payload":{"k\udc00":1}}""", "payload: not valid Unicode text", answer: "s2"),
        ["session_id with an unpaired surrogate"] = Json("""{"id":"s3","lane":"query","payload":{},"session_id":"\ud800"}""", "session_id: not valid Unicode text", answer: "s3"),
        ["duplicate id key"] = Json("""{"id":"ok","lane":"query","payload":{},"id":"other"}""", "id: the key 'id' appears more than once"),
        ["nested too deep"] = Json("""{"id":"d1","lane":"query","payload":""" + new string('[', 100) + new string(']', 100) + "}",
            "body: nested deeper than 64 levels (the limit, the task object and its payload included)", answer: "d1"),
        ["UTF-8 byte order mark"] = new("query", [0xEF, 0xBB, 0xBF, .. """{"id":"b1","lane":"query","payload":{}}"""u8], "application/json",
            "body: starts with a UTF-8 byte order mark (EF BB BF); send the JSON without one", "b1"),
        ["gzip body with content_encoding gzip"] = new Garbage("query", Gzip("""{"id":"z1","lane":"query","payload":{}}"""), "application/json", "body: not valid UTF-8")
        {
            ContentEncoding = "gzip",
        },
        ["timeout_ms not a number"] = Json("""{"id":"x1","lane":"query","payload":{},"timeout_ms":"soon"}""", "timeout_ms: must be a whole number of milliseconds, got a string", answer: "x1"),
        ["timeout_ms too large"] = Json("""{"id":"x2","lane":"query","payload":{},"timeout_ms":9223372036854775807}""",
            "timeout_ms: 9223372036854775807 is over the limit of 2147483647 ms", answer: "x2"),
        ["timeout_ms 1e20"] = Json("""{"id":"x5","lane":"query","payload":{},"timeout_ms":1e20}""", "timeout_ms: 1e20 is over the limit of 2147483647 ms (about 24.8 days)", answer: "x5"),
        ["created_at without offset"] = Json("""{"id":"x3","lane":"query","payload":{},"created_at":"2026-01-31T12:00:00"}""", "created_at: ", answer: "x3"),
        ["unknown command type"] = Json("""{"id":"x4","lane":"query","payload":{},"command_type":"no-such-handler"}""", "command_type: 'no-such-handler' has no handler", answer: "x4"),
        ["content type application/xml with XML"] = Json("<task><id>c2</id></task>", "body: not valid JSON", contentType: "application/xml"),
        ["content type text/plain with text"] = Json("run c3 in the query lane", "body: not valid JSON", contentType: "text/plain"),
        ["MassTransit envelope of another message type"] = Json(
            """{"messageId":"0c7f0000-0000-0000-0000-000000000001","messageType":["urn:message:Other:Thing"],"message":{"id":"m1","lane":"query","payload":{}}}""",
            "no consumer accepted this message", contentType: "application/vnd.masstransit+json", answer: "m1"),
        ["raw task labelled as a MassTransit envelope"] = Json("""{"id":"m2","lane":"query","payload":{}}""",
            "body: sent as application/vnd.masstransit+json but is not a MassTransit envelope", contentType: "application/vnd.masstransit+json", answer: "m2"),
        ["MassTransit envelope holding a broken task"] = Json(
            """{"messageType":["urn:message:LaneQueue.Contracts:ExternalTask"],"message":{"id":"m3","lane":"query"}}""",
            "payload: missing", contentType: "application/vnd.masstransit+json", answer: "m3"),
    };

    public static TheoryData<string> CaseNames() => [.. Cases.Keys];

    [Theory]
    [MemberData(nameof(CaseNames))]
    public async Task Contract_violation_is_dead_lettered_unchanged_with_its_reason_and_answered_when_its_id_is_readable(string name)
    {
        var garbage = Cases[name];
        await using var vhost = await broker.CreateVhostAsync();
        var consumer = await ConsumerHost.StartAsync(vhost.Url);
        try
        {
            await using var listener = await ContractListener.StartAsync(vhost.Url);
            await using var client = await RawClient.ConnectAsync(vhost.Url);
            await client.PublishAsync(garbage.RoutingKey, garbage.Body, new BasicProperties { ContentType = garbage.ContentType, ContentEncoding = garbage.ContentEncoding });

            var after = await client.RunValidAsync("after-garbage");
            Assert.True(after.GetProperty("success").GetBoolean(), $"the valid task after '{name}' failed: {after}");

            var dead = await client.DeadLettersAsync(SessionLane.Query, 1);
            var letter = Assert.Single(dead);
            output.WriteLine($"{name}: MT-Fault-Message = {letter.Reason}");
            Assert.Contains(garbage.Reason, letter.Reason, StringComparison.Ordinal);
            Assert.Equal(garbage.Body, letter.Body);
            Assert.Equal(0u, await client.CountAsync(BrokerNames.LaneQueue(SessionLane.Query)));

            if (garbage.AnswerId is { } id)
            {
                var result = await listener.SettledResultAsync(id);
                output.WriteLine($"{name}: result {result.Status}, attempts {result.Attempts}: {result.Error}");
                Assert.Single(listener.ResultsOf(id));
                Assert.Equal((TaskStatuses.Failed, false, 1, garbage.AnswerLane), (result.Status, result.Success, result.Attempts, result.Lane));
                Assert.Equal(letter.Reason, result.Error); // the documented field: problem, exactly as the dead letter says
                Assert.Equal([TaskEvent.DeadLettered], listener.EventsOf(id).Select(e => e.Event));
                Assert.Equal(result.Error, listener.EventsOf(id)[0].Error);
            }
            else
            {
                await Task.Delay(500);
            }
            // Nothing but the valid task and the answered id got a result or an event.
            Assert.Equal(["after-garbage", .. garbage.AnswerId is { } answered ? [answered] : Array.Empty<string>()],
                listener.Results.Select(r => r.TaskId).Order(StringComparer.Ordinal));
            Assert.All(listener.Events, e => Assert.True(e.TaskId == "after-garbage" || e.TaskId == garbage.AnswerId, $"unexpected event {e.Event} for {e.TaskId}"));
        }
        finally
        {
            await consumer.StopQuietlyAsync();
        }
    }

    public sealed record Accepted(string? ContentType, string Body, string Id);

    static readonly Dictionary<string, Accepted> AcceptedCases = new()
    {
        ["no content type"] = new(null, """{"id":"ok-1","lane":"query","payload":{"n":1}}""", "ok-1"),
        ["application/json"] = new("application/json", """{"id":"ok-2","lane":"query","payload":{"n":1}}""", "ok-2"),
        ["application/json with charset"] = new("application/json; charset=utf-8", """{"id":"ok-3","lane":"query","payload":{"n":1}}""", "ok-3"),
        ["text/plain holding JSON"] = new("text/plain", """{"id":"ok-4","lane":"query","payload":{"n":1}}""", "ok-4"),
        ["application/octet-stream holding JSON"] = new("application/octet-stream", """{"id":"ok-5","lane":"query","payload":{"n":1}}""", "ok-5"),
        ["MassTransit envelope"] = new("application/vnd.masstransit+json",
            """{"messageId":"0c7f0000-0000-0000-0000-000000000002","messageType":["urn:message:LaneQueue.Contracts:ExternalTask"],"message":{"id":"ok-6","lane":"query","payload":{"n":1}}}""", "ok-6"),
        ["MassTransit envelope with every field"] = new("application/vnd.masstransit+json",
            """{"messageId":"0c7f0000-0000-0000-0000-000000000003","conversationId":"0c7f0000-0000-0000-0000-000000000004","sourceAddress":"rabbitmq://elsewhere/x","destinationAddress":"rabbitmq://localhost/lanequeue.tasks","messageType":["urn:message:LaneQueue.Contracts:ExternalTask"],"message":{"id":"ok-7","lane":"query","payload":{"n":1},"command_type":"echo"},"sentTime":"2026-01-31T12:00:00Z","headers":{"x":1},"host":{"machineName":"m","processName":"p"}}""", "ok-7"),
        ["unknown keys, null optionals, non-ASCII payload"] = new("application/json",
            """{"id":"ok-8","lane":"query","payload":{"n":1,"text":"é€😀"},"extra":{"deep":[1,2]},"command_type":null,"session_id":null,"timeout_ms":null,"created_at":null}""", "ok-8"),
        ["created_at far in the future with a timeout"] = new("application/json",
            """{"id":"ok-9","lane":"query","payload":{"n":1},"created_at":"2999-12-31T23:59:59Z","timeout_ms":60000}""", "ok-9"),
        ["created_at long ago without a timeout"] = new("application/json",
            """{"id":"ok-10","lane":"query","payload":{"n":1},"created_at":"1900-01-01T00:00:00+14:00"}""", "ok-10"),
    };

    public static TheoryData<string> AcceptedNames() => [.. AcceptedCases.Keys];

    [Theory]
    [MemberData(nameof(AcceptedNames))]
    public async Task Valid_task_in_any_accepted_form_runs_and_succeeds(string name)
    {
        var accepted = AcceptedCases[name];
        await using var vhost = await broker.CreateVhostAsync();
        var consumer = await ConsumerHost.StartAsync(vhost.Url);
        try
        {
            await using var client = await RawClient.ConnectAsync(vhost.Url);
            await client.PublishAsync("query", accepted.Body, accepted.ContentType);
            var result = await client.ResultAsync(accepted.Id);
            Assert.True(result.GetProperty("success").GetBoolean(), $"{name}: {result}");
            Assert.Equal(1, result.GetProperty("result").GetProperty("n").GetInt32());
            Assert.Equal(0u, await client.CountAsync(TestVhost.DeadLetters(SessionLane.Query)));
        }
        finally
        {
            await consumer.StopQuietlyAsync();
        }
    }

    static string TaskWithPayload(string id, string payloadJson) => $$"""{"id":"{{id}}","lane":"query","payload":{{payloadJson}}}""";

    /// <summary>A JSON string payload of exactly <paramref name="bytes"/> bytes on the wire (quotes included).</summary>
    static string PayloadOf(int bytes, string unit = "x") =>
        "\"" + string.Concat(Enumerable.Repeat(unit, (bytes - 2) / Encoding.UTF8.GetByteCount(unit))) + "\"";

    [Fact]
    public async Task Payload_over_the_default_1_MiB_limit_is_dead_lettered_and_one_at_the_limit_runs()
    {
        const int limit = TaskParser.DefaultMaxPayloadBytes;
        await using var vhost = await broker.CreateVhostAsync();
        var consumer = await ConsumerHost.StartAsync(vhost.Url);
        try
        {
            await using var client = await RawClient.ConnectAsync(vhost.Url);
            await client.PublishAsync("query", TaskWithPayload("at-limit", PayloadOf(limit)));
            await client.PublishAsync("query", TaskWithPayload("over-limit", PayloadOf(limit + 1)));
            // 524,290 characters but 1,048,578 bytes: the limit counts bytes.
            await client.PublishAsync("query", TaskWithPayload("multi-byte-over-limit", PayloadOf(limit + 2, "é")));

            var atLimit = await client.ResultAsync("at-limit");
            Assert.True(atLimit.GetProperty("success").GetBoolean());
            Assert.Equal(limit - 2, atLimit.GetProperty("result").GetString()!.Length);

            var dead = await client.DeadLettersAsync(SessionLane.Query, 2);
            var reasons = dead.Select(d => d.Reason).Order(StringComparer.Ordinal).ToList();
            output.WriteLine(string.Join(Environment.NewLine, reasons));
            Assert.Equal(
                [$"payload: 1048577 bytes is over the limit of {limit} bytes", $"payload: 1048578 bytes is over the limit of {limit} bytes"],
                reasons);
            // Their ids are readable: each gets a failed result with the reason, not the run it was refused.
            Assert.Equal($"payload: 1048577 bytes is over the limit of {limit} bytes", (await client.ResultAsync("over-limit")).GetProperty("error").GetString());
            Assert.Equal($"payload: 1048578 bytes is over the limit of {limit} bytes", (await client.ResultAsync("multi-byte-over-limit")).GetProperty("error").GetString());
            Assert.False((await client.ResultAsync("over-limit")).GetProperty("success").GetBoolean());
        }
        finally
        {
            await consumer.StopQuietlyAsync();
        }
    }

    [Fact]
    public async Task Configured_MaxPayloadBytes_is_enforced_by_the_consumer()
    {
        await using var vhost = await broker.CreateVhostAsync();
        var consumer = await ConsumerHost.StartAsync(vhost.Url, o => o.MaxPayloadBytes = 1000);
        try
        {
            await using var client = await RawClient.ConnectAsync(vhost.Url);
            await client.PublishAsync("query", TaskWithPayload("small-over", PayloadOf(1001)));
            // Far over: refused before parsing (body > payload limit + 64 KiB).
            await client.PublishAsync("query", TaskWithPayload("huge-over", PayloadOf(200_000)));
            var ok = await client.RunValidAsync("small-ok");
            Assert.True(ok.GetProperty("success").GetBoolean());

            var reasons = (await client.DeadLettersAsync(SessionLane.Query, 2)).Select(d => d.Reason).ToList();
            Assert.Contains("payload: 1001 bytes is over the limit of 1000 bytes", reasons);
            // Far over: refused by its length in front of MassTransit's deserializer (OversizedBodyFilter), and still answered.
            const string bodyReason = "body: 200044 bytes is over the limit of 66536 bytes (payload limit + 64 KiB)";
            Assert.Contains(bodyReason, reasons);
            Assert.Equal("payload: 1001 bytes is over the limit of 1000 bytes", (await client.ResultAsync("small-over")).GetProperty("error").GetString());
            Assert.Equal(bodyReason, (await client.ResultAsync("huge-over")).GetProperty("error").GetString());
        }
        finally
        {
            await consumer.StopQuietlyAsync();
        }
    }

    [Fact]
    public async Task Producer_refuses_a_payload_over_the_limit_and_publishes_nothing()
    {
        await using var vhost = await broker.CreateVhostAsync();
        var consumer = await ConsumerHost.StartAsync(vhost.Url);
        try
        {
            await using var client = await RawClient.ConnectAsync(vhost.Url);
            await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = vhost.Url });
            var over = ExternalTask.Create("p-over", SessionLane.Query, TaskJson.ParseElement(PayloadOf(TaskParser.DefaultMaxPayloadBytes + 1)));
            var multiByte = ExternalTask.Create("p-multi", SessionLane.Query, new { text = new string('é', 600_000) });

            var ex = await Assert.ThrowsAsync<InvalidTaskException>(() => producer.SubmitTaskAsync(over));
            Assert.Equal("payload: 1048577 bytes is over the limit of 1048576 bytes", ex.Message);
            Assert.Equal("payload", (await Assert.ThrowsAsync<InvalidTaskException>(() => producer.SubmitTaskAsync(multiByte))).Field);

            var atLimit = await producer.SubmitAndWaitAsync(
                ExternalTask.Create("p-at", SessionLane.Query, TaskJson.ParseElement(PayloadOf(TaskParser.DefaultMaxPayloadBytes))), TimeSpan.FromSeconds(30));
            Assert.True(atLimit.Success);
            Assert.Equal(0u, await client.CountAsync(TestVhost.DeadLetters(SessionLane.Query)));
            // The raw listener reads the results exchange on its own connection: it may see the result a moment after the producer.
            await TestVhost.EventuallyAsync(() => Task.FromResult(client.Results.ContainsKey("p-at")), "the raw listener to see p-at's result", 10);
            Assert.Equal(["p-at"], client.Results.Keys);
        }
        finally
        {
            await consumer.StopQuietlyAsync();
        }
    }

    static readonly Dictionary<string, Action<BasicProperties>> HeaderCases = new()
    {
        ["100 KB header value"] = p => p.Headers = new Dictionary<string, object?> { ["x-big"] = new string('h', 100 * 1024) },
        ["header just under the frame size"] = p => p.Headers = new Dictionary<string, object?> { ["x-big"] = new string('h', 127 * 1024) },
        ["nested tables and arrays"] = p => p.Headers = new Dictionary<string, object?>
        {
            ["x-nested"] = new Dictionary<string, object?>
            {
                ["a"] = new Dictionary<string, object?> { ["b"] = new Dictionary<string, object?> { ["c"] = "deep", ["n"] = 1 } },
                ["list"] = new List<object?> { 1, "two", new Dictionary<string, object?> { ["three"] = 3.0 }, new List<object?> { null, true } },
            },
        },
        ["odd value types"] = p => p.Headers = new Dictionary<string, object?>
        {
            ["x-bool"] = true, ["x-byte"] = (byte)255, ["x-short"] = (short)-1, ["x-long"] = long.MinValue, ["x-double"] = double.MaxValue,
            ["x-float"] = float.Epsilon, ["x-negative-zero"] = -0.0, ["x-uint"] = uint.MaxValue, ["x-sbyte"] = (sbyte)-128, ["x-decimal"] = 12.345m, ["x-null"] = null, ["x-time"] = new AmqpTimestamp(0),
            ["x-binary"] = new byte[] { 0xff, 0xfe, 0x00, 0xc3 }, [""] = "empty name", ["x-\u00e9\u0000"] = "odd name",
        },
        ["a thousand headers"] = p => p.Headers = Enumerable.Range(0, 1000).ToDictionary(i => $"x-h{i}", i => (object?)$"value {i}"),
        ["MassTransit and tracing headers with garbage"] = p => p.Headers = new Dictionary<string, object?>
        {
            ["MT-Redelivery-Count"] = "many", ["MT-Fault-Message"] = "forged", ["MT-Reason"] = 7, ["MessageId"] = 42, ["Content-Type"] = 12,
            ["MT-Host-MachineName"] = new Dictionary<string, object?> { ["x"] = 1 }, ["MT-Activity-Id"] = new byte[] { 0xff },
            ["traceparent"] = "garbage", ["tracestate"] = new byte[] { 0x00, 0xff }, ["baggage"] = "%%%,=,;", ["x-lanequeue-attempt"] = "not a number",
        },
        ["W3C traceparent"] = p => p.Headers = new Dictionary<string, object?> { ["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" },
        ["odd basic properties"] = p =>
        {
            p.MessageId = new string('m', 255);
            p.CorrelationId = "not-a-guid \u00e9";
            p.Type = "urn:message:Something:Else";
            p.ReplyTo = "nowhere";
            p.AppId = "hostile";
            p.Priority = 255;
            p.Timestamp = new AmqpTimestamp(long.MaxValue);
            p.Expiration = "600000";
            p.ContentEncoding = "gzip";
            p.DeliveryMode = DeliveryModes.Transient;
        },
    };

    public static TheoryData<string> HeaderCaseNames() => [.. HeaderCases.Keys];

    [Theory]
    [MemberData(nameof(HeaderCaseNames))]
    public async Task Hostile_headers_neither_break_a_valid_task_nor_keep_a_broken_one_from_its_dead_letter_queue(string name)
    {
        await using var vhost = await broker.CreateVhostAsync();
        var consumer = await ConsumerHost.StartAsync(vhost.Url);
        try
        {
            await using var listener = await ContractListener.StartAsync(vhost.Url);
            await using var client = await RawClient.ConnectAsync(vhost.Url);
            BasicProperties Props(string? contentType = "application/json")
            {
                var properties = new BasicProperties { ContentType = contentType };
                HeaderCases[name](properties);
                return properties;
            }

            await client.PublishAsync("query", Encoding.UTF8.GetBytes("""{"id":"with-headers","lane":"query","payload":{"n":1}}"""), Props());
            await client.PublishAsync("query", Encoding.UTF8.GetBytes("""{"lane":"query","payload":{"n":2}}"""), Props());
            await client.PublishAsync("query", Encoding.UTF8.GetBytes("not json at all"), Props(contentType: null));
            await client.PublishAsync("query", Encoding.UTF8.GetBytes("""{"id":"fails","lane":"query","payload":{},"command_type":"fail"}"""), Props());

            var result = await client.ResultAsync("with-headers");
            Assert.True(result.GetProperty("success").GetBoolean(), $"{name}: {result}");
            Assert.False((await client.ResultAsync("fails")).GetProperty("success").GetBoolean());
            // One result each, also when a forged MT-Redelivery-Count makes MassTransit fail after the consumer answered.
            await listener.SettledResultAsync("fails");
            Assert.Single(listener.ResultsOf("fails"));
            Assert.Single(listener.TerminalEventsOf("fails"));
            Assert.Single(listener.ResultsOf("with-headers"));
            var dead = await client.DeadLettersAsync(SessionLane.Query, 3);
            var reasons = dead.Select(d => d.Reason).Order(StringComparer.Ordinal).ToList();
            output.WriteLine($"{name}: {string.Join(" | ", reasons)}");
            Assert.Equal(3, dead.Count);
            Assert.Contains(reasons, r => r.StartsWith("body: not valid JSON", StringComparison.Ordinal));
            Assert.Contains("id: missing", reasons);
            // A forged MT-Redelivery-Count ("many") makes MassTransit's own fault handling throw on the handler's
            // failure: the task is still dead-lettered (and its failed result published), under MassTransit's reason.
            if (!name.StartsWith("MassTransit", StringComparison.Ordinal))
                Assert.Contains(reasons, r => r.Contains("the fail handler always fails", StringComparison.Ordinal));
            Assert.All(reasons, r => Assert.False(string.IsNullOrWhiteSpace(r)));

            // Each dead letter keeps the headers it came with, or names those it had to drop to fit one AMQP frame.
            var sent = Props().Headers?.Keys.ToList() ?? [];
            foreach (var letter in dead)
            {
                var dropped = letter.Headers.TryGetValue(ContractDeadLetters.DroppedHeadersHeader, out var names) ? RawClient.HeaderText(names) : "";
                if (dropped.Length > 0)
                    output.WriteLine($"dropped from the dead letter: {dropped}");
                Assert.All(sent, header => Assert.True(letter.Headers.ContainsKey(header) || dropped.Contains(header + " (", StringComparison.Ordinal),
                    $"header '{header}' neither kept nor named as dropped"));
            }

            var after = await client.RunValidAsync("after-headers");
            Assert.True(after.GetProperty("success").GetBoolean());
            Assert.Equal(0u, await client.CountAsync(BrokerNames.LaneQueue(SessionLane.Query)));
        }
        finally
        {
            await consumer.StopQuietlyAsync();
        }
    }

    [Theory]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    public async Task Header_the_broker_cannot_store_is_refused_at_publish_and_never_reaches_the_consumer(double value)
    {
        await using var vhost = await broker.CreateVhostAsync();
        var consumer = await ConsumerHost.StartAsync(vhost.Url);
        try
        {
            // RabbitMQ 3.10 cannot decode a NaN or infinite float in a header: it closes the publisher's connection,
            // and the publish is never confirmed. The consumer sees nothing and carries on.
            await using (var hostile = await RawClient.ConnectAsync(vhost.Url))
            {
                var properties = new BasicProperties { ContentType = "application/json", Headers = new Dictionary<string, object?> { ["x-float"] = value } };
                var refused = await Assert.ThrowsAnyAsync<AlreadyClosedException>(() => hostile.PublishAsync("query", "{\"id\":\"nan\",\"lane\":\"query\",\"payload\":{}}"u8.ToArray(), properties));
                output.WriteLine($"{value}: {refused.GetType().Name}: {refused.Message}");
                // The broker closed the connection itself (541 INTERNAL_ERROR, initiated by the peer), not a client-side bug.
                Assert.Equal(ShutdownInitiator.Peer, refused.ShutdownReason?.Initiator);
                Assert.Equal((ushort)541, refused.ShutdownReason?.ReplyCode);
            }

            await using var client = await RawClient.ConnectAsync(vhost.Url);
            Assert.True((await client.RunValidAsync("after-nan")).GetProperty("success").GetBoolean());
            Assert.DoesNotContain("nan", client.Results.Keys);
            Assert.Equal(0u, await client.CountAsync(TestVhost.DeadLetters(SessionLane.Query)));
        }
        finally
        {
            await consumer.StopQuietlyAsync();
        }
    }

    [Theory]
    [InlineData("Query")]
    [InlineData("urgent")]
    [InlineData("")]
    public async Task Routing_key_that_is_not_a_lane_comes_back_to_a_mandatory_publisher(string routingKey)
    {
        await using var vhost = await broker.CreateVhostAsync();
        var consumer = await ConsumerHost.StartAsync(vhost.Url);
        try
        {
            await using var client = await RawClient.ConnectAsync(vhost.Url);
            var returned = await Assert.ThrowsAnyAsync<RabbitMQ.Client.Exceptions.PublishException>(() =>
                client.PublishAsync(routingKey, """{"id":"r1","lane":"query","payload":{}}"""));
            Assert.True(returned.IsReturn, "the broker must return the message (basic.return), not just nack it");
            Assert.True((await client.RunValidAsync("after-return")).GetProperty("success").GetBoolean());
        }
        finally
        {
            await consumer.StopQuietlyAsync();
        }
    }

    [Fact]
    public async Task Priority_queue_topology_dead_letters_to_lanequeue_priority_error()
    {
        await using var vhost = await broker.CreateVhostAsync();
        var consumer = await ConsumerHost.StartAsync(vhost.Url, o => o.Topology = LaneTopology.PriorityQueue);
        try
        {
            await using var client = await RawClient.ConnectAsync(vhost.Url);
            await client.PublishAsync("generate", "not json");
            await client.PublishAsync("control", """{"id":"p1","lane":"Control","payload":{}}""");
            await client.PublishAsync("query", """{"messageType":["urn:message:Other:Thing"],"message":{"id":"p2","lane":"query","payload":{}}}""", "application/vnd.masstransit+json");
            Assert.True((await client.RunValidAsync("after-garbage", SessionLane.Execute)).GetProperty("success").GetBoolean());

            var queue = BrokerNames.DeadLetterQueue(BrokerNames.PriorityQueue);
            await TestVhost.EventuallyAsync(async () => await client.CountAsync(queue) >= 3, $"3 dead letters in {queue}");
            var reasons = (await client.DrainAsync(queue)).Select(d => d.Reason).Order(StringComparer.Ordinal).ToList();
            output.WriteLine(string.Join(Environment.NewLine, reasons));
            Assert.Equal(3, reasons.Count);
            Assert.StartsWith("body: no consumer accepted this message", reasons[0], StringComparison.Ordinal);
            Assert.StartsWith("body: not valid JSON", reasons[1], StringComparison.Ordinal);
            Assert.StartsWith("lane: 'Control' is not a lane (lane names are lower case)", reasons[2], StringComparison.Ordinal);
            Assert.Equal(0u, await client.CountAsync(BrokerNames.PriorityQueue));
        }
        finally
        {
            await consumer.StopQuietlyAsync();
        }
    }
}
