using System.Text;
using System.Text.Json;
using LaneQueue.Contracts;
using LaneQueue.Tests.Faults;

namespace LaneQueue.Tests.Unit;

/// <summary>
/// The shared verdict cases (<c>src/Contracts/wire-cases.json</c>): hostile ids, sizes, Unicode, numbers, repeated keys and
/// wrong types, each with the verdict and the field at fault. The Python and TypeScript clients run the same file through
/// their own parsers (clients/*/tests), so all three languages refuse the same bodies and name the same field.
/// </summary>
public class WireCasesTests
{
    public sealed record WireCase(string Name, byte[] Body, bool Valid, string? Field)
    {
        public override string ToString() => Name;
    }

    static readonly JsonElement Document = Load();

    static JsonElement Load()
    {
        using var document = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(Repo.Root, "src", "Contracts", "wire-cases.json")));
        return document.RootElement.Clone();
    }

    static int MaxPayloadBytes => Document.GetProperty("max_payload_bytes").GetInt32();

    static IEnumerable<WireCase> Cases() =>
        Document.GetProperty("cases").EnumerateArray().Select(c => new WireCase(
            c.GetProperty("name").GetString()!,
            c.TryGetProperty("body_base64", out var encoded) ? Convert.FromBase64String(encoded.GetString()!) : Encoding.UTF8.GetBytes(c.GetProperty("body").GetString()!),
            c.GetProperty("valid").GetBoolean(),
            c.TryGetProperty("field", out var field) ? field.GetString() : null));

    public static TheoryData<string> Names() => [.. Cases().Select(c => c.Name)];

    [Fact]
    public void The_file_holds_at_least_60_cases_with_unique_names_and_both_verdicts()
    {
        var cases = Cases().ToList();
        Assert.True(cases.Count >= 60, $"{cases.Count} cases");
        Assert.Equal(cases.Count, cases.Select(c => c.Name).Distinct(StringComparer.Ordinal).Count());
        Assert.Contains(cases, c => c.Valid);
        Assert.Contains(cases, c => !c.Valid);
        Assert.All(cases, c => Assert.True(c.Valid == (c.Field is null), $"{c.Name}: a field goes with an invalid verdict only"));
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void The_dotnet_parser_gives_the_case_its_verdict_and_field(string name)
    {
        var wire = Cases().Single(c => c.Name == name);
        InvalidTaskException? refused = null;
        try
        {
            TaskParser.Parse(wire.Body, MaxPayloadBytes);
        }
        catch (InvalidTaskException ex)
        {
            refused = ex;
        }
        if (wire.Valid)
            Assert.True(refused is null, $"{name}: refused ({refused?.Message}), expected valid");
        else
        {
            Assert.True(refused is not null, $"{name}: accepted, expected refused on '{wire.Field}'");
            Assert.Equal(wire.Field, refused.Field);
        }
    }
}
