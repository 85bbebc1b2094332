using System.Text;
using System.Text.Json;
using Json.Schema;
using LaneQueue.Contracts;

namespace LaneQueue.Tests.Unit;

/// <summary>The published JSON Schema and the C# parser agree on what a task is.</summary>
public class SchemaTests
{
    static readonly JsonSchema Schema = LoadSchema();

    static JsonSchema LoadSchema()
    {
        using var stream = typeof(ExternalTask).Assembly.GetManifestResourceStream("external-task.schema.json")!;
        using var reader = new StreamReader(stream);
        return JsonSchema.FromText(reader.ReadToEnd());
    }

    static bool SchemaAccepts(string json)
    {
        using var doc = JsonDocument.Parse(json);
        return Schema.Evaluate(doc.RootElement, new EvaluationOptions { RequireFormatValidation = true }).IsValid;
    }

    static bool ParserAccepts(string json)
    {
        try
        {
            TaskParser.Parse(Encoding.UTF8.GetBytes(json));
            return true;
        }
        catch (InvalidTaskException)
        {
            return false;
        }
    }

    public static TheoryData<string> Samples() =>
    [
        """{"id":"a","lane":"query","payload":{}}""",
        """{"id":"a.b:c@d/e-f_g","lane":"control","payload":null}""",
        """{"id":"a","lane":"generate","payload":[1],"command_type":"sleep","session_id":"s","timeout_ms":5,"created_at":"2026-01-31T12:00:00Z"}""",
        """{"id":"a","lane":"execute","payload":"text","command_type":null,"session_id":null,"timeout_ms":null,"created_at":null}""",
        """{"lane":"query","payload":{}}""",
        """{"id":"","lane":"query","payload":{}}""",
        """{"id":"-a","lane":"query","payload":{}}""",
        """{"id":"a b","lane":"query","payload":{}}""",
        """{"id":7,"lane":"query","payload":{}}""",
        """{"id":"a","lane":"Query","payload":{}}""",
        """{"id":"a","lane":"urgent","payload":{}}""",
        """{"id":"a","payload":{}}""",
        """{"id":"a","lane":"query"}""",
        """{"id":"a","lane":"query","payload":{},"timeout_ms":0}""",
        """{"id":"a","lane":"query","payload":{},"timeout_ms":1.5}""",
        """{"id":"a","lane":"query","payload":{},"command_type":1}""",
        """{"id":"a","lane":"query","payload":{},"created_at":"not a time"}""",
        $$$"""{"id":"{{{new string('x', 201)}}}","lane":"query","payload":{}}""",
        """{"id":"a","lane":"query","payload":{},"delay_ms":0}""",
        """{"id":"a","lane":"query","payload":{},"delay_ms":72000000}""",
        """{"id":"a","lane":"query","payload":{},"delay_ms":72000001}""",
        """{"id":"a","lane":"query","payload":{},"delay_ms":-1}""",
        """{"id":"a","lane":"query","payload":{},"delay_ms":1.5}""",
        """{"id":"a","lane":"query","payload":{},"delay_ms":"5"}""",
        """{"id":"a","lane":"query","payload":{},"not_before":"2026-01-31T12:00:00Z"}""",
        """{"id":"a","lane":"query","payload":{},"not_before":"2026-01-31T12:00:00"}""",
        """{"id":"a","lane":"query","payload":{},"delay_ms":5,"not_before":"2026-01-31T12:00:00Z"}""",
        """{"id":"a","lane":"query","payload":{},"delay_ms":null,"not_before":"2026-01-31T12:00:00Z"}""",
        """{"id":"a","lane":"query","payload":{},"delay_ms":5,"not_before":null}""",
    ];

    [Theory]
    [MemberData(nameof(Samples))]
    public void Schema_and_parser_agree(string json) => Assert.Equal(SchemaAccepts(json), ParserAccepts(json));

    [Fact]
    public void Tasks_serialized_from_CSharp_pass_the_schema()
    {
        foreach (var lane in SessionLanes.All)
        {
            var task = ExternalTask.Create($"t-{lane.WireName()}", lane, new { prompt = "x" }, "echo") with { SessionId = "s", TimeoutMs = 1000 };
            Assert.True(SchemaAccepts(Encoding.UTF8.GetString(TaskJson.Serialize(task))));
        }
    }

    [Fact]
    public void Schema_lists_every_property_of_ExternalTask()
    {
        using var doc = JsonDocument.Parse(Encoding.UTF8.GetString(TaskJson.Serialize(ExternalTask.Create("a", SessionLane.Query) with { SessionId = "s", TimeoutMs = 1, CommandType = "c", Checkpoint = TaskJson.EmptyObject, DelayMs = 1, NotBefore = DateTimeOffset.UtcNow, DedupKey = "k", DedupWindowMs = 1, DedupMode = TaskParser.DedupOnce })));
        var schemaText = typeof(ExternalTask).Assembly.GetManifestResourceStream("external-task.schema.json")!;
        using var schemaDoc = JsonDocument.Parse(schemaText);
        var properties = schemaDoc.RootElement.GetProperty("properties").EnumerateObject().Select(p => p.Name).Order();
        Assert.Equal(properties, doc.RootElement.EnumerateObject().Select(p => p.Name).Order());
    }
}
