using System.Text.Json;
using System.Text.Unicode;

namespace LaneQueue.Contracts;

/// <summary>
/// What a consumer can read of a message that may break the contract: its task id (the routing key of its result), and the
/// lane and session when those are readable too. A message has a readable id when its body is UTF-8 JSON (any depth) whose
/// task object (the body, or the <c>message</c> of a MassTransit envelope) holds <c>id</c> exactly once, as a valid id
/// (<see cref="TaskParser.IsValidId"/>); whatever else is wrong with it. Such a message ends with a result; one without a
/// readable id cannot (there is no routing key to publish it with) and waits in the dead-letter queue.
/// </summary>
/// <param name="Id">The task id.</param>
/// <param name="Lane">The task's lane, or null when <c>lane</c> is missing, repeated or not a lane.</param>
/// <param name="SessionId">The task's session, or null when missing or unusable.</param>
public sealed record TaskIdentity(string Id, SessionLane? Lane, string? SessionId)
{
    /// <summary>The identity of the message in <paramref name="body"/>, or null when its id cannot be read.</summary>
    /// <remarks>Reads the bytes in place (no copy, no document), so it costs one pass over the body whatever its size.</remarks>
    public static TaskIdentity? Read(ReadOnlySpan<byte> body)
    {
        if (!Utf8.IsValid(body))
            return null;
        if (body.StartsWith(TaskParser.Utf8Bom))
            body = body[TaskParser.Utf8Bom.Length..]; // refused by the parser, but the id behind it is readable
        var reader = new Utf8JsonReader(body, new JsonReaderOptions { MaxDepth = body.Length + 1 });
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
                return null;
            var root = new Fields();
            var message = new Fields();
            var messages = 0;
            var messageIsObject = false;
            var typesIsArray = false;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var name = Name(ref reader);
                reader.Read();
                switch (name)
                {
                    case "message":
                        messages++;
                        messageIsObject = reader.TokenType == JsonTokenType.StartObject;
                        if (messageIsObject)
                            ReadObject(ref reader, message);
                        else
                            reader.Skip();
                        break;
                    case "messageType":
                        typesIsArray = reader.TokenType == JsonTokenType.StartArray;
                        reader.Skip();
                        break;
                    default:
                        root.Take(name, ref reader);
                        break;
                }
            }
            if (reader.Read())
                return null; // more than one JSON value
            // As TaskParser tells an envelope from a task: messageType an array, message an object, and no lane of its own.
            var task = typesIsArray && messages == 1 && messageIsObject && root.Lanes == 0 ? message : root;
            return task.Identity();
        }
        catch (JsonException)
        {
            return null; // not JSON to its end
        }
    }

    static void ReadObject(ref Utf8JsonReader reader, Fields fields)
    {
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var name = Name(ref reader);
            reader.Read();
            fields.Take(name, ref reader);
        }
    }

    /// <summary>A key's text; null for a key that is not text (an unpaired surrogate escape), which names no field.</summary>
    static string? Name(ref Utf8JsonReader reader)
    {
        try
        {
            return reader.GetString();
        }
        catch (InvalidOperationException)
        {
            return null;
        }
    }

    /// <summary>The fields of one object that make an identity, each counted (a repeated key is ambiguous: not readable).</summary>
    sealed class Fields
    {
        int _ids;
        int _sessions;
        string? _id;
        string? _lane;
        string? _session;

        public int Lanes { get; private set; }

        /// <summary>Looks at the value the reader is on, and leaves the reader on its last token.</summary>
        public void Take(string? name, ref Utf8JsonReader reader)
        {
            switch (name)
            {
                case "id":
                    _ids++;
                    _id = Text(ref reader);
                    break;
                case "lane":
                    Lanes++;
                    _lane = Text(ref reader);
                    break;
                case "session_id":
                    _sessions++;
                    _session = Text(ref reader);
                    break;
            }
            reader.Skip();
        }

        public TaskIdentity? Identity()
        {
            if (_ids != 1 || !TaskParser.IsValidId(_id))
                return null;
            SessionLane? lane = Lanes == 1 && SessionLanes.TryParse(_lane, out var named) ? named : null;
            var session = _sessions == 1 && _session is { } text && text.EnumerateRunes().Count() <= TaskParser.MaxOptionalStringLength ? text : null;
            return new TaskIdentity(_id!, lane, session);
        }

        /// <summary>Longest raw string worth reading: 200 characters, each escaped as a surrogate pair (12 bytes), and then some.</summary>
        const int MaxRawBytes = 4096;

        static string? Text(ref Utf8JsonReader reader)
        {
            if (reader.TokenType != JsonTokenType.String || reader.ValueSpan.Length > MaxRawBytes)
                return null;
            try
            {
                return reader.GetString();
            }
            catch (InvalidOperationException)
            {
                return null;
            }
        }
    }
}
