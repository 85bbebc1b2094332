using System.Text;
using LaneQueue.Contracts;

namespace LaneQueue.Tests.Unit;

public class TaskParserTests
{
    static ExternalTask Parse(string json, int max = TaskParser.DefaultMaxPayloadBytes) => TaskParser.Parse(Encoding.UTF8.GetBytes(json), max);

    static InvalidTaskException Rejects(string json, string field, int max = TaskParser.DefaultMaxPayloadBytes)
    {
        var ex = Assert.Throws<InvalidTaskException>(() => Parse(json, max));
        Assert.Equal(field, ex.Field);
        Assert.StartsWith(field + ": ", ex.Message, StringComparison.Ordinal);
        return ex;
    }

    [Fact]
    public void Minimal_wire_task_has_id_lane_and_payload()
    {
        var task = Parse("""{"id":"urgent-query","lane":"query","payload":{"q":"status"}}""");
        Assert.Equal("urgent-query", task.Id);
        Assert.Equal(SessionLane.Query, task.Lane);
        Assert.Equal("status", task.Payload.GetProperty("q").GetString());
        Assert.Null(task.CommandType);
        Assert.Null(task.TimeoutMs);
    }

    [Fact]
    public void All_snake_case_fields_are_read()
    {
        var task = Parse("""{"id":"t1","lane":"generate","payload":[1,2],"command_type":"sleep","session_id":"s9","timeout_ms":1500,"created_at":"2026-01-31T12:00:00Z","extra":"ignored"}""");
        Assert.Equal(SessionLane.Generate, task.Lane);
        Assert.Equal("sleep", task.CommandType);
        Assert.Equal("s9", task.SessionId);
        Assert.Equal(1500, task.TimeoutMs);
        Assert.Equal(new DateTimeOffset(2026, 1, 31, 12, 0, 0, TimeSpan.Zero), task.CreatedAt);
    }

    [Fact]
    public void MassTransit_envelope_is_unwrapped()
    {
        var task = Parse("""{"messageId":"x","messageType":["urn:message:LaneQueue.Contracts:ExternalTask"],"message":{"id":"e1","lane":"control","payload":{}}}""");
        Assert.Equal("e1", task.Id);
        Assert.Equal(SessionLane.Control, task.Lane);
    }

    [Theory]
    [InlineData("not json", "body")]
    [InlineData("[1,2,3]", "body")]
    [InlineData("\"a string\"", "body")]
    [InlineData("""{"lane":"query","payload":{}}""", "id")]
    [InlineData("""{"id":"","lane":"query","payload":{}}""", "id")]
    [InlineData("""{"id":42,"lane":"query","payload":{}}""", "id")]
    [InlineData("""{"id":"has space","lane":"query","payload":{}}""", "id")]
    [InlineData("""{"id":"a","payload":{}}""", "lane")]
    [InlineData("""{"id":"a","lane":"urgent","payload":{}}""", "lane")]
    [InlineData("""{"id":"a","lane":3,"payload":{}}""", "lane")]
    [InlineData("""{"id":"a","lane":"query"}""", "payload")]
    [InlineData("""{"id":"a","lane":"query","payload":{},"timeout_ms":"soon"}""", "timeout_ms")]
    [InlineData("""{"id":"a","lane":"query","payload":{},"timeout_ms":-5}""", "timeout_ms")]
    [InlineData("""{"id":"a","lane":"query","payload":{},"command_type":7}""", "command_type")]
    [InlineData("""{"id":"a","lane":"query","payload":{},"session_id":{}}""", "session_id")]
    [InlineData("""{"id":"a","lane":"query","payload":{},"created_at":"yesterday"}""", "created_at")]
    public void Bad_input_names_the_field(string json, string field) => Rejects(json, field);

    [Fact]
    public void Lane_in_the_wrong_case_says_lanes_are_lower_case()
    {
        var ex = Rejects("""{"id":"a","lane":"Query","payload":{}}""", "lane");
        Assert.Contains("lower case", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Over_long_id_is_rejected()
    {
        var id = new string('a', TaskParser.MaxIdLength + 1);
        Rejects($$$"""{"id":"{{{id}}}","lane":"query","payload":{}}""", "id");
        Assert.Equal(TaskParser.MaxIdLength, Parse($$$"""{"id":"{{{id[1..]}}}","lane":"query","payload":{}}""").Id.Length);
    }

    [Fact]
    public void Payload_over_the_limit_is_rejected_with_sizes()
    {
        var big = new string('x', 2000);
        var ex = Rejects($$$"""{"id":"a","lane":"query","payload":"{{{big}}}"}""", "payload", max: 1000);
        Assert.Contains("over the limit of 1000 bytes", ex.Message, StringComparison.Ordinal);
        Assert.Equal("a", Parse($$$"""{"id":"a","lane":"query","payload":"{{{big}}}"}""", max: 4000).Id);
    }

    [Fact]
    public void Validate_checks_tasks_built_in_code()
    {
        Assert.Equal("id", Assert.Throws<InvalidTaskException>(() => TaskParser.Validate(ExternalTask.Create("", SessionLane.Query))).Field);
        Assert.Equal("lane", Assert.Throws<InvalidTaskException>(() => TaskParser.Validate(new ExternalTask { Id = "a", Lane = (SessionLane)9 })).Field);
        Assert.Equal("timeout_ms", Assert.Throws<InvalidTaskException>(() => TaskParser.Validate(ExternalTask.Create("a", SessionLane.Query) with { TimeoutMs = 0 })).Field);
        TaskParser.Validate(ExternalTask.Create("ok", SessionLane.Execute, new { n = 1 }));
    }

    [Fact]
    public void Serialized_task_round_trips_through_the_parser()
    {
        var task = ExternalTask.Create("round-trip", SessionLane.Execute, new { n = 1 }, "echo") with { SessionId = "s", TimeoutMs = 10 };
        var parsed = TaskParser.Parse(TaskJson.Serialize(task));
        Assert.Equal(task.Id, parsed.Id);
        Assert.Equal(task.Lane, parsed.Lane);
        Assert.Equal(task.CommandType, parsed.CommandType);
        Assert.Equal(task.SessionId, parsed.SessionId);
        Assert.Equal(task.TimeoutMs, parsed.TimeoutMs);
        Assert.Equal(task.CreatedAt, parsed.CreatedAt);
        Assert.Equal(1, parsed.Payload.GetProperty("n").GetInt32());
    }

    [Fact]
    public void Timeout_helpers_count_from_the_start_of_the_run_not_from_created_at()
    {
        var created = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
        var started = created.AddMinutes(5); // waited five minutes in its lane: that does not count against its timeout
        var task = ExternalTask.Create("a", SessionLane.Query) with { CreatedAt = created, TimeoutMs = 1000 };
        Assert.Equal(600, task.RemainingMs(started, started.AddMilliseconds(400)));
        Assert.False(task.IsTimedOut(started, started.AddMilliseconds(999)));
        Assert.True(task.IsTimedOut(started, started.AddMilliseconds(1000)));
        Assert.Null((task with { TimeoutMs = null }).RemainingMs(started, started));
    }
}
