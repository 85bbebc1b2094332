using System.Text.Json;
using System.Text.Json.Serialization;

namespace LaneQueue.Contracts;

/// <summary>The JSON settings of the wire format, shared by producer, consumer and tests.</summary>
public static class TaskJson
{
    public static JsonSerializerOptions Options { get; } = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public static JsonElement EmptyObject { get; } = ParseElement("{}");

    public static JsonElement ParseElement(string json)
    {
        using var document = JsonDocument.Parse(json);
        return document.RootElement.Clone();
    }

    public static byte[] Serialize<T>(T value) => JsonSerializer.SerializeToUtf8Bytes(value, Options);

    /// <summary>
    /// Whether every string and key in <paramref name="value"/> is Unicode text (valid UTF-8, no unpaired surrogate escape),
    /// so that it can be written as JSON again.
    /// JSON may escape an unpaired surrogate (<c>"\ud800"</c>): readers accept it, but System.Text.Json refuses to write
    /// such an element (and other languages' readers disagree on what it means).
    /// </summary>
    public static bool IsUnicode(JsonElement value)
    {
        if (value.ValueKind is not (JsonValueKind.Object or JsonValueKind.Array or JsonValueKind.String))
            return true;
        var raw = System.Runtime.InteropServices.JsonMarshal.GetRawUtf8Value(value);
        var reader = new Utf8JsonReader(raw, new JsonReaderOptions { MaxDepth = raw.Length + 1 });
        while (reader.Read())
        {
            if (reader.TokenType is not (JsonTokenType.String or JsonTokenType.PropertyName))
                continue;
            if (!reader.ValueIsEscaped)
            {
                if (!System.Text.Unicode.Utf8.IsValid(reader.ValueSpan))
                    return false;
                continue;
            }
            try
            {
                reader.GetString(); // an escape may spell an unpaired surrogate
            }
            catch (InvalidOperationException)
            {
                return false;
            }
        }
        return true;
    }

    public static T Deserialize<T>(ReadOnlySpan<byte> json) =>
        JsonSerializer.Deserialize<T>(json, Options) ?? throw new JsonException($"null is not a {typeof(T).Name}");
}

/// <summary>Reads and writes lanes by their exact wire names.</summary>
public sealed class SessionLaneJsonConverter : JsonConverter<SessionLane>
{
    public override SessionLane Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        var name = reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
        return SessionLanes.TryParse(name, out var lane)
            ? lane.Value
            : throw new JsonException($"lane must be one of {SessionLanes.NamesList}");
    }

    public override void Write(Utf8JsonWriter writer, SessionLane value, JsonSerializerOptions options) =>
        writer.WriteStringValue(value.WireName());
}
