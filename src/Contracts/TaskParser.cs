using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.RegularExpressions;
using System.Text.Unicode;

namespace LaneQueue.Contracts;

/// <summary>
/// Reads a task from raw bytes and checks it against the wire contract, naming the field at fault.
/// Accepts the plain JSON wire format and MassTransit's envelope (whose <c>message</c> holds the task).
/// Whatever the bytes, it either returns a valid task or throws <see cref="InvalidTaskException"/>; nothing else.
/// </summary>
public static partial class TaskParser
{
    public const int DefaultMaxPayloadBytes = 1024 * 1024;
    public const int MaxIdLength = 200;
    public const int MaxOptionalStringLength = 200;

    /// <summary>Largest <c>timeout_ms</c>: 2^31-1 ms, about 24.8 days.</summary>
    public const long MaxTimeoutMs = int.MaxValue;

    /// <summary>
    /// Longest delay of a delayed task (<c>delay_ms</c>, or <c>not_before</c> ahead of now): 20 hours. The fleet's cancel
    /// records (the fleet log stream) are kept for a day, so a task cancelled while it waits is still known as cancelled
    /// when it comes due, also on a consumer that started in between.
    /// </summary>
    public const long MaxDelayMs = 20L * 60 * 60 * 1000;

    /// <summary>Longest <c>dedup_window_ms</c>: 24 hours.</summary>
    public const long MaxDedupWindowMs = 24L * 60 * 60 * 1000;

    /// <summary>The <c>dedup_window_ms</c> of a task that gives a <c>dedup_key</c> without one: 60 s.</summary>
    public const long DefaultDedupWindowMs = 60_000;

    /// <summary><c>dedup_mode</c> "once" (the default): of the tasks with one key, the first to come due runs.</summary>
    public const string DedupOnce = "once";

    /// <summary><c>dedup_mode</c> "debounce": of the tasks with one key, the last one seen runs; the earlier ones are replaced.</summary>
    public const string DedupDebounce = "debounce";

    /// <summary>A body may be this much larger than the payload limit (room for the other fields or an envelope).</summary>
    public const int MaxBodyOverheadBytes = 64 * 1024;

    /// <summary>How deep JSON may nest, the task object and the payload included (<c>{"payload":[[1]]}</c> is 3 levels).</summary>
    public const int MaxDepth = 64;

    /// <summary>The UTF-8 byte order mark, EF BB BF.</summary>
    public static ReadOnlySpan<byte> Utf8Bom => [0xEF, 0xBB, 0xBF];

    /// <summary>Reads and checks a task; throws <see cref="InvalidTaskException"/> naming the field at fault.</summary>
    public static ExternalTask Parse(ReadOnlyMemory<byte> body, int maxPayloadBytes = DefaultMaxPayloadBytes)
    {
        // Checked before parsing, so a huge or broken body costs no more than a look at its bytes.
        if (BodySizeProblem(body.Length, maxPayloadBytes) is { } tooLarge)
            throw tooLarge;
        if (!Utf8.IsValid(body.Span))
            throw new InvalidTaskException("body", "not valid UTF-8");
        // RFC 8259 forbids a byte order mark on JSON sent over a network; JSON readers (System.Text.Json, MassTransit's) stop at it.
        if (body.Span.StartsWith(Utf8Bom))
            throw new InvalidTaskException("body", "starts with a UTF-8 byte order mark (EF BB BF); send the JSON without one");

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(body, new JsonDocumentOptions { MaxDepth = MaxDepth });
        }
        catch (JsonException ex)
        {
            throw NestsDeeperThanLimit(body.Span)
                ? new InvalidTaskException("body", $"nested deeper than {MaxDepth} levels (the limit, the task object and its payload included)")
                : new InvalidTaskException("body", $"not valid JSON ({ex.Message})");
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new InvalidTaskException("body", $"expected a JSON object, got {Describe(root.ValueKind)}");

            // Before any lookup by key: a key with a broken escape would make the lookup itself throw.
            RejectRepeatedKeys(root);
            if (IsMassTransitEnvelope(root, out var message))
            {
                root = message;
                RejectRepeatedKeys(root);
            }

            return Read(root, maxPayloadBytes);
        }
    }

    /// <summary>Largest body a consumer with this payload limit reads: the limit plus <see cref="MaxBodyOverheadBytes"/>.</summary>
    public static long MaxBodyBytes(int maxPayloadBytes) => (long)maxPayloadBytes + MaxBodyOverheadBytes;

    /// <summary>The refusal of a body of <paramref name="bodyBytes"/> bytes, or null when it is not over <see cref="MaxBodyBytes"/>.</summary>
    public static InvalidTaskException? BodySizeProblem(long bodyBytes, int maxPayloadBytes) =>
        bodyBytes > MaxBodyBytes(maxPayloadBytes)
            ? new InvalidTaskException("body", $"{bodyBytes} bytes is over the limit of {MaxBodyBytes(maxPayloadBytes)} bytes (payload limit + {MaxBodyOverheadBytes / 1024} KiB)")
            : null;

    /// <summary>
    /// Whether the JSON opens a container deeper than <see cref="MaxDepth"/> before anything else is wrong with it (which is
    /// what made the parse fail then). The reader keeps no stack of its own, so any depth is safe to scan.
    /// </summary>
    static bool NestsDeeperThanLimit(ReadOnlySpan<byte> body)
    {
        var reader = new Utf8JsonReader(body, new JsonReaderOptions { MaxDepth = body.Length + 1 });
        try
        {
            while (reader.Read())
            {
                if (reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray && reader.CurrentDepth >= MaxDepth)
                    return true;
            }
        }
        catch (JsonException)
        {
            // broken before it got too deep
        }
        return false;
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
            DelayMs = OptionalDelay(root, "delay_ms"),
            NotBefore = OptionalTimestamp(root, "not_before"),
            DedupKey = OptionalString(root, "dedup_key"),
            DedupWindowMs = OptionalDedupWindow(root, "dedup_window_ms"),
            DedupMode = OptionalString(root, "dedup_mode"),
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
        if (!IsValidId(task.Id))
            throw new InvalidTaskException("id", $"'{Truncate(task.Id)}' may only hold letters, digits and . _ : @ / - and must start with a letter or digit");
        if (!Enum.IsDefined(task.Lane))
            throw new InvalidTaskException("lane", $"{(int)task.Lane} is not a lane; expected one of {SessionLanes.NamesList}");
        if (task.Payload.ValueKind == JsonValueKind.Undefined)
            throw new InvalidTaskException("payload", "missing; send {} when the task has no payload");
        var size = PayloadBytes(task.Payload);
        if (size > maxPayloadBytes)
            throw new InvalidTaskException("payload", $"{size} bytes is over the limit of {maxPayloadBytes} bytes");
        // Checked before the task runs, not left to its result: the payload is echoed and re-published, and JSON holding an
        // unpaired surrogate escape can be read but never written again (the result would fail to serialize after the run).
        RequireUnicode(task.Payload, "payload");
        if (task.Checkpoint is { } checkpoint)
            RequireUnicode(checkpoint, "checkpoint");
        if (task.TimeoutMs is <= 0)
            throw new InvalidTaskException("timeout_ms", $"{task.TimeoutMs} must be a positive number of milliseconds");
        if (task.TimeoutMs is > MaxTimeoutMs)
            throw new InvalidTaskException("timeout_ms", $"{task.TimeoutMs} is over the limit of {MaxTimeoutMs} ms (about 24.8 days)");
        CheckLength("command_type", task.CommandType);
        CheckLength("session_id", task.SessionId);
        CheckLength("dedup_key", task.DedupKey);
        if (task.DedupKey is { Length: 0 })
            throw new InvalidTaskException("dedup_key", "is empty; leave it out for no de-duplication");
        if (task.DedupWindowMs is not null && task.DedupKey is null)
            throw new InvalidTaskException("dedup_window_ms", "is given without dedup_key; the window belongs to a key");
        if (task.DedupWindowMs is < 1 or > MaxDedupWindowMs)
            throw new InvalidTaskException("dedup_window_ms", $"{task.DedupWindowMs} must be from 1 to {MaxDedupWindowMs} ms (24 hours)");
        if (task.DedupMode is not null and not DedupOnce and not DedupDebounce)
            throw new InvalidTaskException("dedup_mode", $"'{Truncate(task.DedupMode)}' is not a mode; expected \"{DedupOnce}\" (the first runs) or \"{DedupDebounce}\" (the last runs)");
        if (task.DedupMode is not null && task.DedupKey is null)
            throw new InvalidTaskException("dedup_mode", "is given without dedup_key; the mode belongs to a key");
        if (task.DelayMs is not null && task.NotBefore is not null)
            throw new InvalidTaskException("delay_ms", "and not_before are both given; send one of them (delay_ms: milliseconds from the submit, not_before: a time)");
        if (task.DelayMs is < 0)
            throw new InvalidTaskException("delay_ms", $"{task.DelayMs} must be 0 or more milliseconds");
        if (task.DelayMs is > MaxDelayMs)
            throw new InvalidTaskException("delay_ms", $"{task.DelayMs} is over the limit of {MaxDelayMs} ms (20 hours)");
        if (task.DedupMode == DedupDebounce && task.DelayMs > task.DedupWindowOrDefaultMs)
            throw new InvalidTaskException("dedup_window_ms", $"{(task.DedupWindowMs is { } window ? $"{window} ms" : $"absent ({DefaultDedupWindowMs} ms)")} is shorter than delay_ms " +
                $"{task.DelayMs} ms; in debounce mode the key remembers its latest task for the window, so give dedup_window_ms at least the delay");
        if (task.NotBefore is { } notBefore && notBefore - DateTimeOffset.UtcNow > TimeSpan.FromMilliseconds(MaxDelayMs))
            throw new InvalidTaskException("not_before", $"{notBefore:O} is more than {MaxDelayMs} ms (20 hours) ahead of now");
    }

    /// <summary>
    /// When a delayed task is due: <c>not_before</c>, or <c>created_at</c> + <c>delay_ms</c> (the consumer that first reads a task
    /// without <c>created_at</c> gives it the time it read it); null for a task that is not delayed.
    /// </summary>
    public static DateTimeOffset? DueAt(ExternalTask task)
    {
        ArgumentNullException.ThrowIfNull(task);
        return task.NotBefore ?? (task.DelayMs is { } delay ? task.CreatedAt.AddMilliseconds(delay) : null);
    }

    /// <summary>Whether <paramref name="id"/> is a valid task id (length and characters), as <see cref="Validate"/> checks it.</summary>
    public static bool IsValidId(string? id) => id is { Length: > 0 and <= MaxIdLength } && IdPattern().IsMatch(id);

    static void RequireUnicode(JsonElement value, string field)
    {
        if (!TaskJson.IsUnicode(value))
            throw new InvalidTaskException(field, "not valid Unicode text: a string or key holds an unpaired surrogate escape such as \\ud800");
    }

    /// <summary>The payload's size as UTF-8 JSON, as it travels.</summary>
    public static int PayloadBytes(JsonElement payload) => JsonMarshal.GetRawUtf8Value(payload).Length;

    /// <summary>Lengths count Unicode characters (code points), as JSON Schema's maxLength does.</summary>
    static void CheckLength(string field, string? value)
    {
        if (value is { Length: > MaxOptionalStringLength } && CodePoints(value) is var length and > MaxOptionalStringLength)
            throw new InvalidTaskException(field, $"{length} characters is over the limit of {MaxOptionalStringLength}");
    }

    static int CodePoints(string value)
    {
        var count = 0;
        for (var i = 0; i < value.Length; i++, count++)
        {
            if (char.IsHighSurrogate(value[i]) && i + 1 < value.Length && char.IsLowSurrogate(value[i + 1]))
                i++;
        }
        return count;
    }

    /// <summary>
    /// A key given twice would let two readers see two different tasks (most JSON libraries keep the last, some the
    /// first), so the task object may hold each key once (as I-JSON, RFC 7493, asks).
    /// </summary>
    static void RejectRepeatedKeys(JsonElement root)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var property in root.EnumerateObject())
        {
            string name;
            try
            {
                name = property.Name;
            }
            catch (InvalidOperationException)
            {
                throw new InvalidTaskException("body", "a key is not valid Unicode text (unpaired surrogate escape)");
            }
            if (!seen.Add(name))
                throw new InvalidTaskException(KnownFields.Contains(name) ? name : "body", $"the key '{Truncate(name)}' appears more than once");
        }
    }

    static readonly HashSet<string> KnownFields = new(StringComparer.Ordinal)
    {
        "id", "lane", "payload", "command_type", "session_id", "timeout_ms", "created_at", "preemptible", "checkpoint",
        "delay_ms", "not_before", "dedup_key", "dedup_window_ms", "dedup_mode",
    };

    /// <summary>A JSON string's text; an unpaired surrogate escape such as <c>"\ud800"</c> is not text.</summary>
    static string Text(JsonElement value, string field)
    {
        try
        {
            return value.GetString()!;
        }
        catch (InvalidOperationException)
        {
            throw new InvalidTaskException(field, "not valid Unicode text (unpaired surrogate escape)");
        }
    }

    /// <summary>
    /// A JSON number with no fraction (<c>5</c>, <c>5.0</c> and <c>5e0</c> alike); saturates outside the range of long. Only call
    /// it on a number.
    /// </summary>
    static bool TryGetWholeNumber(JsonElement value, out long number)
    {
        if (value.TryGetInt64(out number))
            return true;
        if (value.TryGetDecimal(out var exact))
        {
            if (exact != decimal.Truncate(exact))
                return false;
            number = exact > long.MaxValue ? long.MaxValue : exact < long.MinValue ? long.MinValue : (long)exact;
            return true;
        }
        if (value.TryGetDouble(out var approximate) && double.IsFinite(approximate))
        {
            if (approximate != Math.Floor(approximate))
                return false;
            number = approximate > 0 ? long.MaxValue : long.MinValue;
            return true;
        }
        // Beyond double's range (1e400): a whole number, far out of any limit.
        number = value.GetRawText().StartsWith('-') ? long.MinValue : long.MaxValue;
        return true;
    }

    static string RequiredString(JsonElement root, string name)
    {
        if (!root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
            throw new InvalidTaskException(name, "missing");
        if (value.ValueKind != JsonValueKind.String)
            throw new InvalidTaskException(name, $"must be a string, got {Describe(value.ValueKind)}");
        return Text(value, name);
    }

    static string? OptionalString(JsonElement root, string name)
    {
        if (!root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
            return null;
        return value.ValueKind == JsonValueKind.String
            ? Text(value, name)
            : throw new InvalidTaskException(name, $"must be a string, got {Describe(value.ValueKind)}");
    }

    static long? OptionalPositiveLong(JsonElement root, string name)
    {
        if (Milliseconds(root, name) is not ({ } number, var value))
            return null;
        // The number as it was sent: 1e20 is reported as 1e20, not as the long it saturated to.
        if (number <= 0)
            throw new InvalidTaskException(name, $"{Truncate(value.GetRawText())} must be a positive number of milliseconds");
        if (number > MaxTimeoutMs)
            throw new InvalidTaskException(name, $"{Truncate(value.GetRawText())} is over the limit of {MaxTimeoutMs} ms (about 24.8 days)");
        return number;
    }

    /// <summary>A whole number of milliseconds (<c>5000.0</c> and <c>5e3</c> count), with the element as sent; null when absent or null.</summary>
    static (long? Number, JsonElement Value) Milliseconds(JsonElement root, string name)
    {
        if (!root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
            return (null, value);
        if (value.ValueKind != JsonValueKind.Number || !TryGetWholeNumber(value, out var number))
            throw new InvalidTaskException(name, $"must be a whole number of milliseconds, got {(value.ValueKind == JsonValueKind.Number ? Truncate(value.GetRawText()) : Describe(value.ValueKind))}");
        return (number, value);
    }

    static long? OptionalDedupWindow(JsonElement root, string name)
    {
        if (Milliseconds(root, name) is not ({ } number, var value))
            return null;
        if (number < 1 || number > MaxDedupWindowMs)
            throw new InvalidTaskException(name, $"{Truncate(value.GetRawText())} must be from 1 to {MaxDedupWindowMs} ms (24 hours)");
        return number;
    }

    static long? OptionalDelay(JsonElement root, string name)
    {
        if (Milliseconds(root, name) is not ({ } number, var value))
            return null;
        if (number < 0)
            throw new InvalidTaskException(name, $"{Truncate(value.GetRawText())} must be 0 or more milliseconds");
        if (number > MaxDelayMs)
            throw new InvalidTaskException(name, $"{Truncate(value.GetRawText())} is over the limit of {MaxDelayMs} ms (20 hours)");
        return number;
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
        // RFC 3339 (what JSON Schema's date-time means): a date, T, a time with seconds, and Z or an offset;
        // as the schema's pattern: years 1900-2999, offsets up to 14:00, no leap second.
        if (value.ValueKind == JsonValueKind.String && Rfc3339().IsMatch(Text(value, name)) && value.TryGetDateTimeOffset(out var at))
            return at;
        throw new InvalidTaskException(name, "must be an RFC 3339 timestamp with a time zone, such as 2026-01-31T12:00:00Z or 2026-01-31T13:00:00.5+01:00");
    }

    /// <summary>Reads an RFC 3339 timestamp with a zone as the wire takes it (<c>created_at</c>, <c>not_before</c>).</summary>
    public static bool TryParseTimestamp(string? text, out DateTimeOffset at)
    {
        at = default;
        return text is not null && Rfc3339().IsMatch(text)
            && DateTimeOffset.TryParse(text, System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.None, out at);
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

    /// <summary>At most 40 UTF-16 units of <paramref name="value"/>, never cutting a surrogate pair in two.</summary>
    internal static string Truncate(string value) =>
        value.Length <= 40 ? value : value[..(char.IsHighSurrogate(value[39]) ? 39 : 40)] + "…";

    // \z, not $: in .NET, $ also matches before a final newline.
    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9._:@/-]*\z")]
    private static partial Regex IdPattern();

    [GeneratedRegex(@"^(19|2[0-9])[0-9]{2}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9]|[+-]14:00)\z")]
    private static partial Regex Rfc3339();
}
