using System.Text;
using System.Text.Json;
using LaneQueue.Contracts;

namespace LaneQueue.Tests.Unit;

/// <summary>
/// Issue 16's parser rules: text that could not be written back as JSON is refused at parse (naming the field), the depth
/// limit is reported as such, numbers are reported as sent, and what a consumer can read of a broken message's identity.
/// </summary>
public class WireContractTests
{
    static InvalidTaskException Rejects(string json, int max = TaskParser.DefaultMaxPayloadBytes) =>
        Assert.Throws<InvalidTaskException>(() => TaskParser.Parse(Encoding.UTF8.GetBytes(json), max));

    [Theory]
    [InlineData("""{"id":"s1","lane":"query","payload":{"s":"\ud800"}}""", "payload")]
    [InlineData("""{"id":"s2","lane":"query","payload":["ok","\udc00x"]}""", "payload")]
    [InlineData("""{"id":"s3","lane":"query","payload":{"k\ud800":1}}""", "payload")]
    [InlineData("""{"id":"s4","lane":"query","payload":"\ud83d"}""", "payload")]
    [InlineData("""{"id":"s5","lane":"query","payload":{},"checkpoint":{"at":"\ud800"}}""", "checkpoint")]
    [InlineData("""{"id":"s6","lane":"query","payload":{},"session_id":"\ud800"}""", "session_id")]
    [InlineData("""{"id":"s7","lane":"query","payload":{},"command_type":"\udfff"}""", "command_type")]
    public void Unpaired_surrogate_escapes_are_refused_at_parse_naming_the_field(string json, string field)
    {
        var ex = Rejects(json);
        Assert.Equal(field, ex.Field);
        Assert.StartsWith(field + ": not valid Unicode text", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Paired_surrogate_escapes_and_raw_astral_text_are_fine_and_can_be_written_again()
    {
        var task = TaskParser.Parse("""{"id":"ok","lane":"query","payload":{"e":"\ud83d\ude00","raw":"😀","k\ud83d\ude00":"v"}}"""u8.ToArray());
        Assert.Equal("😀", task.Payload.GetProperty("e").GetString());
        var written = JsonSerializer.Serialize(new ExternalTaskResult { TaskId = task.Id, Result = task.Payload }, TaskJson.Options);
        Assert.Contains("task_id", written, StringComparison.Ordinal);
    }

    [Fact]
    public void A_task_built_in_code_with_an_unpaired_surrogate_in_its_payload_is_refused_before_publishing()
    {
        var task = ExternalTask.Create("c1", SessionLane.Query, TaskJson.ParseElement("""{"s":"\ud800"}"""));
        Assert.Equal("payload", Assert.Throws<InvalidTaskException>(() => TaskParser.Validate(task)).Field);
    }

    [Theory]
    [InlineData(63, false)]
    [InlineData(64, true)]
    [InlineData(1000, true)]
    public void Nesting_past_64_levels_is_reported_as_the_depth_limit_not_as_invalid_JSON(int payloadDepth, bool refused)
    {
        // The task object is level 1, so a payload of n nested arrays reaches level n + 1.
        var json = """{"id":"d1","lane":"query","payload":""" + new string('[', payloadDepth) + new string(']', payloadDepth) + "}";
        if (!refused)
        {
            Assert.Equal("d1", TaskParser.Parse(Encoding.UTF8.GetBytes(json)).Id);
            return;
        }
        var ex = Rejects(json);
        Assert.Equal("body: nested deeper than 64 levels (the limit, the task object and its payload included)", ex.Message);
    }

    [Fact]
    public void Broken_JSON_that_is_not_too_deep_is_still_not_valid_JSON()
    {
        Assert.StartsWith("body: not valid JSON (", Rejects("""{"id":"d2","lane":"query","payload":[[[}""").Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("1e20", "timeout_ms: 1e20 is over the limit of 2147483647 ms (about 24.8 days)")]
    [InlineData("9223372036854775807", "timeout_ms: 9223372036854775807 is over the limit of 2147483647 ms (about 24.8 days)")]
    [InlineData("1e400", "timeout_ms: 1e400 is over the limit of 2147483647 ms (about 24.8 days)")]
    [InlineData("2147483648", "timeout_ms: 2147483648 is over the limit of 2147483647 ms (about 24.8 days)")]
    [InlineData("-1e20", "timeout_ms: -1e20 must be a positive number of milliseconds")]
    [InlineData("0.0", "timeout_ms: 0.0 must be a positive number of milliseconds")]
    [InlineData("1.5", "timeout_ms: must be a whole number of milliseconds, got 1.5")]
    public void Timeout_out_of_range_is_reported_with_the_number_as_it_was_sent(string sent, string message)
    {
        Assert.Equal(message, Rejects($$"""{"id":"t","lane":"query","payload":{},"timeout_ms":{{sent}}}""").Message);
    }

    [Theory]
    [InlineData("2147483647", 2147483647L)]
    [InlineData("5e3", 5000L)]
    [InlineData("2.147483647e9", 2147483647L)]
    public void Timeout_at_the_limit_in_any_number_form_is_accepted(string sent, long expected)
    {
        Assert.Equal(expected, TaskParser.Parse(Encoding.UTF8.GetBytes($$"""{"id":"t","lane":"query","payload":{},"timeout_ms":{{sent}}}""")).TimeoutMs);
    }

    [Fact]
    public void Body_limit_is_payload_limit_plus_64_KiB_and_is_checked_by_length_alone()
    {
        Assert.Equal(1_114_112, TaskParser.MaxBodyBytes(TaskParser.DefaultMaxPayloadBytes));
        Assert.Null(TaskParser.BodySizeProblem(1_114_112, TaskParser.DefaultMaxPayloadBytes));
        Assert.Equal("body: 1114113 bytes is over the limit of 1114112 bytes (payload limit + 64 KiB)",
            TaskParser.BodySizeProblem(1_114_113, TaskParser.DefaultMaxPayloadBytes)!.Message);
    }

    public static TheoryData<string, string?, string?, string?> Identities() => new()
    {
        // body, id, lane, session_id (null id: no readable id)
        { """{"id":"a1","lane":"query","payload":{}}""", "a1", "query", null },
        { """{"id":"a2","lane":"Query","session_id":"s","payload":{}}""", "a2", null, "s" },
        { """{"lane":"execute","id":"a3"}""", "a3", "execute", null },
        { """{"id":"a4","lane":"query","payload":{"s":"\ud800"}}""", "a4", "query", null },
        { """{"id":"a5","lane":"query","payload":""" + new string('[', 500) + new string(']', 500) + "}", "a5", "query", null },
        { """{"id":"a6","lane":"query","session_id":"\ud800","payload":{}}""", "a6", "query", null },
        { """{"messageType":["urn:message:LaneQueue.Contracts:ExternalTask"],"message":{"id":"e1","lane":"generate"}}""", "e1", "generate", null },
        { """{"message":{"id":"e2","lane":"query"},"messageType":["urn:message:Other:Thing"],"id":"outer"}""", "e2", "query", null },
        { """{"id":"e3","lane":"query","messageType":["x"],"message":{"id":"inner"}}""", "e3", "query", null },
        { "this is not json", null, null, null },
        { """{"id":"t1","lane":"query","payload":{""", null, null, null },
        { """{"id":"x1","lane":"query","payload":{}} trailing""", null, null, null },
        { "[1,2,3]", null, null, null },
        { """{"lane":"query","payload":{}}""", null, null, null },
        { """{"id":"","lane":"query"}""", null, null, null },
        { """{"id":"a b","lane":"query"}""", null, null, null },
        { """{"id":"abc\n","lane":"query"}""", null, null, null },
        { """{"id":"a\ud800","lane":"query"}""", null, null, null },
        { """{"id":7,"lane":"query"}""", null, null, null },
        { """{"id":"ok","lane":"query","id":"other"}""", null, null, null },
        { "{\"id\":\"" + new string('i', 201) + "\",\"lane\":\"query\"}", null, null, null },
    };

    [Theory]
    [MemberData(nameof(Identities))]
    public void Identity_of_a_message_is_read_whatever_else_is_wrong_with_it(string body, string? id, string? lane, string? sessionId)
    {
        var identity = TaskIdentity.Read(Encoding.UTF8.GetBytes(body));
        if (id is null)
        {
            Assert.Null(identity);
            return;
        }
        Assert.NotNull(identity);
        Assert.Equal(id, identity.Id);
        Assert.Equal(lane, identity.Lane?.WireName());
        Assert.Equal(sessionId, identity.SessionId);
    }

    [Fact]
    public void A_UTF8_byte_order_mark_is_refused_with_its_own_reason_but_the_id_behind_it_is_readable()
    {
        byte[] body = [0xEF, 0xBB, 0xBF, .. """{"id":"bom-1","lane":"query","payload":{}}"""u8];
        var ex = Assert.Throws<InvalidTaskException>(() => TaskParser.Parse(body));
        Assert.Equal("body: starts with a UTF-8 byte order mark (EF BB BF); send the JSON without one", ex.Message);
        Assert.Equal("bom-1", TaskIdentity.Read(body)?.Id);
    }

    [Fact]
    public void Identity_needs_valid_UTF8_anywhere_in_the_body()
    {
        byte[] body = [.. "{\"id\":\"a\",\"lane\":\"query\",\"payload\":\""u8, 0xff, .. "\"}"u8];
        Assert.Null(TaskIdentity.Read(body));
    }
}
