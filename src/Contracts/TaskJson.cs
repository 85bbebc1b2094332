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
