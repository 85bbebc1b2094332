using System.Text.Json;
using LaneQueue.Contracts;

namespace LaneQueue.Consumer;

/// <summary>Runs an <see cref="ITaskHandler{TPayload}"/>: deserializes the payload, refusing one that does not fit.</summary>
internal sealed class TypedHandler<TPayload>(object handler) : ITaskHandler
{
    static readonly JsonSerializerOptions PayloadJson = new(TaskJson.Options)
    {
        // A required or non-nullable member that is missing or null is a payload that does not fit, not a null at run time.
        RespectNullableAnnotations = true,
        RespectRequiredConstructorParameters = true,
    };

    public Task<object?> HandleAsync(TaskContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        TPayload? payload;
        try
        {
            payload = context.Task.Payload.Deserialize<TPayload>(PayloadJson);
        }
        catch (Exception ex) when (ex is JsonException or NotSupportedException or InvalidOperationException)
        {
            throw new InvalidTaskException("payload", $"does not fit {typeof(TPayload).Name} (command_type '{context.Task.CommandType}'): {ex.Message}");
        }
        if (payload is null)
            throw new InvalidTaskException("payload", $"is null; {typeof(TPayload).Name} expected (command_type '{context.Task.CommandType}')");
        return ((ITaskHandler<TPayload>)handler).HandleAsync(payload, context);
    }
}
