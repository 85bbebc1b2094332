using System.Text.Json;
using System.Text.RegularExpressions;

namespace LaneQueue.Contracts;

/// <summary>
/// Reads a task from raw bytes and checks it against the wire contract, naming the field at fault.
/// Accepts the plain JSON wire format and MassTransit's envelope (whose <c>message</c> holds the task).
/// </summary>
public static partial class TaskParser
{
    public const int DefaultMaxPayloadBytes = 1024 * 1024;
    public const int MaxIdLength = 200;
    public const int MaxOptionalStringLength = 200;

    public static ExternalTask Parse(ReadOnlyMemory<byte> body, int maxPayloadBytes = DefaultMaxPayloadBytes)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(body, new JsonDocumentOptions { MaxDepth = 64 });
        }
        catch (JsonException ex)
        {
            throw new InvalidTaskException("body", $"not valid JSON ({ex.Message})");
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new InvalidTaskException("body", $"expected a JSON object, got {Describe(root.ValueKind)}");

            if (IsMassTransitEnvelope(root, out var message))
                root = message;

            return Read(root, maxPayloadBytes);
        }
    }

    static bool IsMassTransitEnvelope(JsonElement root, out JsonElement message)
    {
        message = default;
        return root.TryGetProperty("messageType", out var types) && types.ValueKind == JsonValueKind.Array
            && root.TryGetProperty("message", out message) && message.ValueKind == JsonValueKind.Object
            && !root.TryGetProperty("lane", out _);
    }

    static ExternalTask Read(JsonElement root, int maxPayloadBytes)
    {
        var id = RequiredString(root, "id");
        var laneName = RequiredString(root, "lane");
        if (!SessionLanes.TryParse(laneName, out var lane))
        {
            var hint = SessionLanes.TryParse(laneName.ToLowerInvariant(), out _) ? " (lane names are lower case)" : "";
            throw new InvalidTaskException("lane", $"'{Truncate(laneName)}' is not a lane{hint}; expected one of {SessionLanes.NamesList}");
        }

        if (!root.TryGetProperty("payload", out var payload) || payload.ValueKind == JsonValueKind.Undefined)
            throw new InvalidTaskException("payload", "missing; send {} when the task has no payload");

        var task = new ExternalTask
        {
            Id = id,
            Lane = lane.Value,
            Payload = payload.Clone(),
            CommandType = OptionalString(root, "command_type"),
            SessionId = OptionalString(root, "session_id"),
            TimeoutMs = OptionalPositiveLong(root, "timeout_ms"),
            CreatedAt = OptionalTimestamp(root, "created_at") ?? DateTimeOffset.UtcNow,
            Preemptible = OptionalBool(root, "preemptible"),
            Checkpoint = root.TryGetProperty("checkpoint", out var checkpoint) && checkpoint.ValueKind != JsonValueKind.Null ? checkpoint.Clone() : null,
        };
        Validate(task, maxPayloadBytes);
        return task;
    }

    /// <summary>Checks a task built in code; the producer calls this before publishing.</summary>
    public static void Validate(ExternalTask task, int maxPayloadBytes = DefaultMaxPayloadBytes)
    {
        ArgumentNullException.ThrowIfNull(task);
        if (string.IsNullOrEmpty(task.Id))
            throw new InvalidTaskException("id", "missing or empty");
        if (task.Id.Length > MaxIdLength)
            throw new InvalidTaskException("id", $"{task.Id.Length} characters is over the limit of {MaxIdLength}");
        if (!IdPattern().IsMatch(task.Id))
            throw new InvalidTaskException("id", $"'{Truncate(task.Id)}' may only hold letters, digits and . _ : @ / - and must start with a letter or digit");
        if (!Enum.IsDefined(task.Lane))
            throw new InvalidTaskException("lane", $"{(int)task.Lane} is not a lane; expected one of {SessionLanes.NamesList}");
        if (task.Payload.ValueKind == JsonValueKind.Undefined)
            throw new InvalidTaskException("payload", "missing; send {} when the task has no payload");
        var size = PayloadBytes(task.Payload);
        if (size > maxPayloadBytes)
            throw new InvalidTaskException("payload", $"{size} bytes is over the limit of {maxPayloadBytes} bytes");
        if (task.TimeoutMs is <= 0)
            throw new InvalidTaskException("timeout_ms", $"{task.TimeoutMs} must be a positive number of milliseconds");
        CheckLength("command_type", task.CommandType);
        CheckLength("session_id", task.SessionId);
    }

    public static int PayloadBytes(JsonElement payload) => payload.GetRawText().Length;

    static void CheckLength(string field, string? value)
    {
        if (value is { Length: > MaxOptionalStringLength })
            throw new InvalidTaskException(field, $"{value.Length} characters is over the limit of {MaxOptionalStringLength}");
    }

    static string RequiredString(JsonElement root, string name)
    {
        if (!root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
            throw new InvalidTaskException(name, "missing");
        if (value.ValueKind != JsonValueKind.String)
            throw new InvalidTaskException(name, $"must be a string, got {Describe(value.ValueKind)}");
        return value.GetString()!;
    }

    static string? OptionalString(JsonElement root, string name)
    {
        if (!root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
            return null;
        return value.ValueKind == JsonValueKind.String
            ? value.GetString()
            : throw new InvalidTaskException(name, $"must be a string, got {Describe(value.ValueKind)}");
    }

    static long? OptionalPositiveLong(JsonElement root, string name)
    {
        if (!root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
            return null;
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt64(out var number))
            throw new InvalidTaskException(name, $"must be a whole number of milliseconds, got {Describe(value.ValueKind)}");
        return number > 0 ? number : throw new InvalidTaskException(name, $"{number} must be a positive number of milliseconds");
    }

    static bool OptionalBool(JsonElement root, string name)
    {
        if (!root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
            return false;
        return value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new InvalidTaskException(name, $"must be true or false, got {Describe(value.ValueKind)}"),
        };
    }

    static DateTimeOffset? OptionalTimestamp(JsonElement root, string name)
    {
        if (!root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
            return null;
        if (value.ValueKind == JsonValueKind.String && value.TryGetDateTimeOffset(out var at))
            return at;
        throw new InvalidTaskException(name, "must be an ISO 8601 timestamp such as 2026-01-31T12:00:00Z");
    }

    static string Describe(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => "nothing",
    };

    static string Truncate(string value) => value.Length <= 40 ? value : value[..40] + "…";

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._:@/-]*$")]
    private static partial Regex IdPattern();
}
