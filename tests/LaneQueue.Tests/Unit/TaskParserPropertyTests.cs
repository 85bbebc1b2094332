using System.Text;
using System.Text.Json;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Json.Schema;
using LaneQueue.Contracts;

namespace LaneQueue.Tests.Unit;

/// <summary>
/// Property-based tests of <see cref="TaskParser"/> (FsCheck): whatever the bytes, the parser returns a valid task or
/// throws <see cref="InvalidTaskException"/> naming a field of the contract; valid tasks round-trip; and the published
/// JSON Schema and the parser agree on generated near-valid tasks. A failure prints the shrunk input and a seed
/// (<c>[Property(Replay = "...")]</c> reruns it).
/// </summary>
public class TaskParserPropertyTests
{
    static readonly JsonSchema Schema;

    /// <summary>Every field a rejection may name: the schema's properties, plus <c>body</c> for the message as a whole.</summary>
    static readonly HashSet<string> KnownFields;

    static TaskParserPropertyTests()
    {
        using var stream = typeof(ExternalTask).Assembly.GetManifestResourceStream("external-task.schema.json")!;
        using var reader = new StreamReader(stream);
        var text = reader.ReadToEnd();
        // A registry of its own: SchemaTests registers the same $id in the global one.
        Schema = JsonSchema.FromText(text, new BuildOptions { SchemaRegistry = new SchemaRegistry() });
        using var doc = JsonDocument.Parse(text);
        KnownFields = [.. doc.RootElement.GetProperty("properties").EnumerateObject().Select(p => p.Name), "body"];
    }

    const int Limit = 4096;

    /// <summary>Parses, and checks the one allowed failure: an InvalidTaskException that names a known field.</summary>
    static (ExternalTask? Task, InvalidTaskException? Rejection) Outcome(byte[] body, int limit = Limit)
    {
        try
        {
            return (TaskParser.Parse(body, limit), null);
        }
        catch (InvalidTaskException ex)
        {
            return (null, ex);
        }
    }

    static bool IsWellFormedRejection(InvalidTaskException ex) =>
        KnownFields.Contains(ex.Field) && ex.Message.StartsWith(ex.Field + ": ", StringComparison.Ordinal) && ex.Problem.Length > 0;

    static bool SchemaAccepts(string json)
    {
        using var doc = JsonDocument.Parse(json);
        return Schema.Evaluate(doc.RootElement, new EvaluationOptions { RequireFormatValidation = true }).IsValid;
    }

    // ---- generators ----------------------------------------------------------------------------------------------

    static Gen<string> StringOf(Gen<string> pieces, int min, int max) =>
        from n in Gen.Choose(min, max)
        from parts in Gen.ArrayOf(pieces, n)
        select string.Concat(parts);

    /// <summary>Valid Unicode text that needs escaping now and then: quotes, controls, non-ASCII, astral characters.</summary>
    static readonly Gen<string> Text = StringOf(
        Gen.Elements("a", "Z", "0", " ", "_", "-", ".", "/", ":", "@", "\"", "\\", "\n", "\t", "\0", "\u001f", "\u007f",
            "é", "ß", "€", "中", "\u2028", "😀", "𝄞", "<", "&", "'"), 0, 12);

    /// <summary>A JSON string; non-ASCII characters stay raw UTF-8 (the C# serializer would escape them).</summary>
    static string Quote(string text) => JsonSerializer.Serialize(text, RawUnicode);

    static readonly JsonSerializerOptions RawUnicode = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    static readonly Gen<string> Number = Gen.OneOf(
        Gen.Choose(-1000, 1000).Select(n => n.ToString(System.Globalization.CultureInfo.InvariantCulture)),
        Gen.Elements("0", "-0", "0.5", "-1.25e-3", "1E2", "1e308", "123456789012345678901234567890", "9223372036854775807"));

    static readonly Gen<string> Scalar = Gen.Frequency(
        (1, Gen.Elements("null", "true", "false")),
        (2, Number),
        (3, Text.Select(Quote)));

    /// <summary>Any JSON value, as text, nested up to <paramref name="depth"/> levels.</summary>
    static Gen<string> JsonValue(int depth) => depth <= 0
        ? Scalar
        : Gen.Frequency(
            (4, Scalar),
            (1, from n in Gen.Choose(0, 4)
                from items in Gen.ArrayOf(JsonValue(depth - 1), n)
                select "[" + string.Join(",", items) + "]"),
            (1, from n in Gen.Choose(0, 4)
                from keys in Gen.ArrayOf(Text, n)
                from values in Gen.ArrayOf(JsonValue(depth - 1), n)
                select "{" + string.Join(",", keys.Distinct().Zip(values, (k, v) => Quote(k) + ":" + v)) + "}"));

    const string IdFirst = "ABCXYZabcxyz0189";
    const string IdRest = "ABCXYZabcxyz0189._:@/-";

    static readonly Gen<string> ValidId =
        from length in Gen.Frequency((6, Gen.Choose(1, 20)), (1, Gen.Choose(190, TaskParser.MaxIdLength)))
        from first in Gen.Elements(IdFirst.ToCharArray())
        from rest in Gen.ArrayOf(Gen.Elements(IdRest.ToCharArray()), length - 1)
        select first + new string(rest);

    static readonly Gen<SessionLane> Lane = Gen.Elements(SessionLanes.All.ToArray());

    /// <summary>Optional strings around the 200-character limit, counted in code points (an emoji is two UTF-16 units).</summary>
    static readonly Gen<string> NearLimitText =
        from length in Gen.Elements(1, 199, 200, 201)
        from parts in Gen.ArrayOf(Gen.Elements("a", "é", "😀", "𝄞"), length)
        select string.Concat(parts);

    static readonly Gen<DateTimeOffset> Timestamp =
        from seconds in Gen.Choose(0, int.MaxValue)
        from ticks in Gen.Choose(0, 9_999_999)
        from offsetMinutes in Gen.Choose(-14 * 60, 14 * 60)
        select new DateTimeOffset(DateTime.UnixEpoch.AddSeconds(seconds).AddTicks(ticks)).ToOffset(TimeSpan.FromMinutes(offsetMinutes));

    static readonly Gen<ExternalTask> ValidTask =
        from id in ValidId
        from lane in Lane
        from payload in JsonValue(3)
        from commandType in Gen.OneOf(Text, NearLimitText.Where(t => t.EnumerateRunes().Count() <= 200)).OrNull()
        from sessionId in Text.OrNull()
        from timeout in Gen.Frequency((1, Gen.Constant<long?>(null)), (3, Gen.Choose(1, int.MaxValue).Select(n => (long?)n)))
        from createdAt in Timestamp
        select new ExternalTask
        {
            Id = id,
            Lane = lane,
            Payload = TaskJson.ParseElement(payload),
            CommandType = commandType,
            SessionId = sessionId,
            TimeoutMs = timeout,
            CreatedAt = createdAt,
        };

    static string Rfc3339(DateTimeOffset at, int fractionDigits) =>
        at.ToString("yyyy-MM-dd'T'HH:mm:ss", System.Globalization.CultureInfo.InvariantCulture)
        + (fractionDigits > 0 ? "." + at.ToString(new string('f', fractionDigits), System.Globalization.CultureInfo.InvariantCulture) : "")
        + (at.Offset == TimeSpan.Zero ? "Z" : at.ToString("zzz", System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>Raw JSON values, right or wrong, for each field of the contract.</summary>
    static readonly Dictionary<string, (Gen<string> Good, Gen<string> Bad)> Fields = new()
    {
        ["id"] = (ValidId.Select(Quote), Gen.OneOf(
            Gen.Elements("\"\"", "\"-a\"", "\".a\"", "\"a b\"", "\"a\\n\"", "\"\\na\"", "\"a\\u0000\"", "\"é\"", "\"a+b\"", "7", "null", "true", "[]", "{}"),
            Gen.Choose(TaskParser.MaxIdLength + 1, TaskParser.MaxIdLength + 5).Select(n => Quote(new string('a', n))),
            Text.Select(Quote))),
        ["lane"] = (Lane.Select(l => Quote(l.WireName())), Gen.Elements(
            "\"Query\"", "\"QUERY\"", "\"urgent\"", "\"\"", "\" query\"", "\"query \"", "\"query\\n\"", "0", "3", "null", "false", "[\"query\"]", "{}")),
        ["payload"] = (JsonValue(3), JsonValue(1)),
        ["command_type"] = (Gen.OneOf(Text.Select(Quote), Gen.Constant("null")), Gen.OneOf(
            NearLimitText.Select(Quote), Gen.Elements("1", "true", "{}", "[]", "\"\""))),
        ["session_id"] = (Gen.OneOf(Text.Select(Quote), Gen.Constant("null")), Gen.OneOf(
            NearLimitText.Select(Quote), Gen.Elements("1", "false", "{\"a\":1}", "[\"s\"]"))),
        ["timeout_ms"] = (Gen.OneOf(Gen.Choose(1, int.MaxValue).Select(n => n.ToString(System.Globalization.CultureInfo.InvariantCulture)), Gen.Constant("null")),
            Gen.Elements("0", "-1", "-0", "1.0", "1.5", "5e2", "5E-1", "2147483647", "2147483647.0", "2147483648", "9223372036854775807",
                "9223372036854775808", "1e20", "1e300", "\"5\"", "true", "[]")),
        ["created_at"] = (Gen.OneOf(
                from at in Timestamp from digits in Gen.Choose(0, 9) select Quote(Rfc3339(at, Math.Min(digits, 7))),
                Gen.Constant("null")),
            Gen.OneOf(
                Gen.Elements("2026-01-31T12:00:00", "2026-01-31", "2026-01-31T12:00Z", "2026-01-31 12:00:00Z", "2026-01-31t12:00:00z",
                    "2026-01-31T12:00:00z", "2026-01-31T23:59:60Z", "2026-01-31T24:00:00Z", "2026-02-30T00:00:00Z", "2026-13-01T00:00:00Z",
                    "2026-01-31T12:00:00+1:00", "2026-01-31T12:00:00+0100", "2026-01-31T12:00:00.Z", "20260131T120000Z", "yesterday", "",
                    "2026-01-31T12:00:00Z\n", "2026-01-31T12:00:00.123456789+01:00", "2026-01-31T12:00:00+14:00", "2026-01-31T12:00:00-14:00", "2026-01-31T12:00:00+15:00", "2026-01-31T12:00:00-23:59", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00")
                    .Select(Quote),
                Gen.Elements("0", "1769860800", "true", "{}"))),
    };

    static readonly Gen<string> ExtraField = Gen.OneOf(
        from key in Gen.Elements("extra", "Id", "LANE", "payload_", "messageType", "message", "")
        from value in JsonValue(1)
        select Quote(key) + ":" + value,
        from key in Text.Where(k => !Fields.ContainsKey(k))
        from value in Scalar
        select Quote(key) + ":" + value);

    /// <summary>A task object in which each field is right (mostly), wrong, or absent, plus now and then an unknown key.</summary>
    static readonly Gen<string> NearValidTask =
        from values in Gen.CollectToList(Fields.Select(f =>
            Gen.Frequency(
                (8, f.Value.Good.Select(v => (string?)(Quote(f.Key) + ":" + v))),
                (2, f.Value.Bad.Select(v => (string?)(Quote(f.Key) + ":" + v))),
                (1, Gen.Constant<string?>(null)))))
        from extras in Gen.Frequency((4, Gen.Constant(Array.Empty<string>())), (1, Gen.ArrayOf(ExtraField, 1)))
        from members in Gen.Shuffle(values.OfType<string>().Concat(extras.Where(e => !Fields.Keys.Any(k => e.StartsWith(Quote(k) + ":", StringComparison.Ordinal)))))
        select "{" + string.Join(",", members) + "}";

    static readonly Gen<byte[]> ValidTaskBytes = ValidTask.Select(t => TaskJson.Serialize(t));

    static readonly byte[][] Spice =
    [
        "\""u8.ToArray(), "\\"u8.ToArray(), "{"u8.ToArray(), "}"u8.ToArray(), "["u8.ToArray(), ","u8.ToArray(), ":"u8.ToArray(),
        "null"u8.ToArray(), "1e999"u8.ToArray(), "\\ud800"u8.ToArray(), "\\udc00"u8.ToArray(), "\\u0000"u8.ToArray(), "\"id\":"u8.ToArray(),
        [0xff], [0xc3], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xef, 0xbb, 0xbf], [0x00], [0x0a],
    ];

    /// <summary>A valid task's bytes after a few random cuts, splices and insertions: near misses a fuzzer would find.</summary>
    static readonly Gen<byte[]> MutatedTask =
        from original in ValidTaskBytes
        from steps in Gen.Choose(1, 4)
        from edits in Gen.ArrayOf(Gen.Zip(Gen.Choose(0, 3), Gen.Zip(Gen.Choose(0, int.MaxValue), Gen.Choose(0, Spice.Length - 1))), steps)
        select Mutate(original, edits);

    static byte[] Mutate(byte[] bytes, (int Kind, (int Where, int Spice) At)[] edits)
    {
        var list = new List<byte>(bytes);
        foreach (var (kind, (where, spice)) in edits)
        {
            var at = list.Count == 0 ? 0 : where % list.Count;
            switch (kind)
            {
                case 0:
                    list.InsertRange(at, Spice[spice]);
                    break;
                case 1 when list.Count > 0:
                    list.RemoveRange(at, Math.Min(1 + spice, list.Count - at));
                    break;
                case 2 when list.Count > 0:
                    list[at] = Spice[spice][0];
                    break;
                default:
                    list.RemoveRange(at, list.Count - at);
                    break;
            }
        }
        return [.. list];
    }

    static readonly Gen<byte[]> AnyBytes = Gen.Frequency(
        (2, ArbMap.Default.GeneratorFor<byte[]>()),
        (3, MutatedTask),
        (2, NearValidTask.Select(Encoding.UTF8.GetBytes)),
        (1, JsonValue(3).Select(Encoding.UTF8.GetBytes)));

    // ---- properties ----------------------------------------------------------------------------------------------

    [Property(MaxTest = 2000)]
    public Property Any_bytes_give_a_valid_task_or_an_InvalidTaskException_naming_a_known_field() =>
        Prop.ForAll(AnyBytes.ToArbitrary(), body =>
        {
            var (task, rejection) = Outcome(body);
            if (task is not null)
            {
                TaskParser.Validate(task, Limit);
                return true;
            }
            return IsWellFormedRejection(rejection!);
        });

    [Property(MaxTest = 500)]
    public Property Valid_tasks_round_trip_through_the_wire_format_and_the_MassTransit_envelope() =>
        Prop.ForAll(ValidTask.ToArbitrary(), task =>
        {
            var raw = TaskJson.Serialize(task);
            var envelope = Encoding.UTF8.GetBytes(
                $$"""{"messageId":"{{Guid.NewGuid()}}","messageType":["urn:message:LaneQueue.Contracts:ExternalTask"],"message":{{Encoding.UTF8.GetString(raw)}}}""");
            foreach (var parsed in new[] { TaskParser.Parse(raw, Limit), TaskParser.Parse(envelope, Limit) })
            {
                Assert.Equal(task.Id, parsed.Id);
                Assert.Equal(task.Lane, parsed.Lane);
                Assert.True(JsonElement.DeepEquals(task.Payload, parsed.Payload), $"payload {task.Payload.GetRawText()} came back as {parsed.Payload.GetRawText()}");
                Assert.Equal(task.CommandType, parsed.CommandType);
                Assert.Equal(task.SessionId, parsed.SessionId);
                Assert.Equal(task.TimeoutMs, parsed.TimeoutMs);
                Assert.Equal(task.CreatedAt, parsed.CreatedAt);
                Assert.Equal(task.CreatedAt.Offset, parsed.CreatedAt.Offset);
                Assert.Equal(raw, TaskJson.Serialize(parsed));
            }
        });

    [Property(MaxTest = 1500)]
    public Property Schema_and_parser_agree_on_near_valid_tasks() =>
        Prop.ForAll(NearValidTask.ToArbitrary(), json =>
        {
            var (task, rejection) = Outcome(Encoding.UTF8.GetBytes(json));
            var schema = SchemaAccepts(json);
            Assert.True(schema == (task is not null),
                $"schema says {(schema ? "valid" : "invalid")}, parser says {(task is not null ? "valid" : rejection!.Message)}: {json}");
            Assert.True(rejection is null || IsWellFormedRejection(rejection), rejection?.Message);
        });

    [Property(MaxTest = 300)]
    public Property Every_strict_prefix_of_a_valid_task_is_rejected_as_body() =>
        Prop.ForAll(Gen.Zip(ValidTaskBytes, Gen.Choose(0, int.MaxValue)).ToArbitrary(), pair =>
        {
            var (bytes, cut) = pair;
            var (task, rejection) = Outcome(bytes[..(cut % bytes.Length)]);
            return task is null && rejection!.Field == "body";
        });

    [Property(MaxTest = 300)]
    public Property Payload_limit_counts_UTF8_bytes_on_the_wire() =>
        Prop.ForAll(Gen.Zip(StringOf(Gen.Elements("a", "é", "€", "😀"), 0, 300), Gen.Choose(-3, 3)).ToArbitrary(), pair =>
        {
            var (text, slack) = pair;
            var payload = Quote(text);
            var bytes = Encoding.UTF8.GetByteCount(payload);
            var limit = Math.Max(1, bytes + slack);
            var (task, rejection) = Outcome(Encoding.UTF8.GetBytes($$"""{"id":"p","lane":"query","payload":{{payload}}}"""), limit);
            Assert.Equal(bytes <= limit, task is not null);
            Assert.True(task is not null || rejection!.Field == "payload", rejection?.Message);
            Assert.True(task is null || TaskParser.PayloadBytes(task.Payload) == bytes);
        });

    // ---- examples the generators found, kept as plain facts --------------------------------------------------------

    [Theory]
    [InlineData("""{"id":"a","lane":"query","payload":{},"id":"b"}""", "id")]
    [InlineData("""{"id":"a","lane":"query","payload":{},"lane":"control"}""", "lane")]
    [InlineData("""{"id":"a","lane":"query","payload":{},"extra":1,"extra":2}""", "body")]
    [InlineData("""{"id":"a","lane":"query","payload":{},"\u0069d":"b"}""", "id")]
    [InlineData("""{"id":"a\ud800","lane":"query","payload":{}}""", "id")]
    [InlineData("""{"id":"a","lane":"\udc00","payload":{}}""", "lane")]
    [InlineData("""{"id":"a","lane":"query","payload":{},"session_id":"\ud83d"}""", "session_id")]
    [InlineData("""{"id":"a","lane":"query","payload":{},"\ud800":1}""", "body")]
    [InlineData("""{"id":"abc\n","lane":"query","payload":{}}""", "id")]
    [InlineData("""{"id":"a","lane":"query","payload":{},"timeout_ms":2147483648}""", "timeout_ms")]
    [InlineData("""{"id":"a","lane":"query","payload":{},"created_at":"2026-01-31T12:00:00"}""", "created_at")]
    [InlineData("""{"id":"a","lane":"query","payload":{},"created_at":"2026-01-31"}""", "created_at")]
    public void Found_by_the_generators_rejected_naming_the_field(string json, string field)
    {
        var (task, rejection) = Outcome(Encoding.UTF8.GetBytes(json));
        Assert.Null(task);
        Assert.Equal(field, rejection!.Field);
    }

    [Fact]
    public void Invalid_UTF8_anywhere_is_rejected_as_body()
    {
        byte[] body = [.. "{\"id\":\"a\",\"lane\":\"query\",\"payload\":\"x"u8, 0xC3, .. "\"}"u8];
        Assert.Equal("body", Outcome(body).Rejection!.Field);
    }

    [Theory]
    [InlineData("1.0", 1)]
    [InlineData("5e2", 500)]
    [InlineData("2147483647.0", 2147483647)]
    public void Whole_numbers_written_with_a_fraction_or_exponent_are_whole_numbers(string raw, long expected) =>
        Assert.Equal(expected, TaskParser.Parse(Encoding.UTF8.GetBytes($$"""{"id":"a","lane":"query","payload":{},"timeout_ms":{{raw}}}""")).TimeoutMs);

    [Fact]
    public void Payload_of_multi_byte_characters_is_measured_in_bytes()
    {
        var payload = Quote(new string('é', 600));
        var body = Encoding.UTF8.GetBytes($$"""{"id":"a","lane":"query","payload":{{payload}}}""");
        Assert.Equal("payload", Outcome(body, 1000).Rejection!.Field);
        Assert.Equal(1202, TaskParser.PayloadBytes(TaskParser.Parse(body, 2000).Payload));
    }

    [Fact]
    public void Body_far_over_the_payload_limit_is_rejected_before_it_is_parsed()
    {
        var body = Encoding.UTF8.GetBytes("[" + string.Join(",", Enumerable.Repeat("1", 200_000)) + "]");
        var rejection = Outcome(body, 1000).Rejection!;
        Assert.Equal("body", rejection.Field);
        Assert.Contains("over the limit", rejection.Problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Lengths_count_characters_not_UTF16_units()
    {
        var emoji = string.Concat(Enumerable.Repeat("😀", 200));
        Assert.Equal(emoji, TaskParser.Parse(Encoding.UTF8.GetBytes($$"""{"id":"a","lane":"query","payload":{},"command_type":{{Quote(emoji)}}}""")).CommandType);
        Assert.Equal("command_type", Outcome(Encoding.UTF8.GetBytes($$"""{"id":"a","lane":"query","payload":{},"command_type":{{Quote(emoji + "a")}}}""")).Rejection!.Field);
    }
}
