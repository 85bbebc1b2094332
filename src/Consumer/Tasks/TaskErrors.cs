using LaneQueue.Contracts;

namespace LaneQueue.Consumer;

/// <summary>
/// The split between failures worth retrying and failures that can never succeed, in one place for the consumer and the
/// test harness. Never retried: a payload that does not fit the handler (<see cref="InvalidTaskException"/> from a typed
/// handler), a handler's own <see cref="PermanentTaskException"/>, and a result that cannot be written as JSON. Retried per
/// the policy: anything else a handler throws, and a timeout.
/// </summary>
internal static class TaskErrors
{
    /// <summary>Whether the failure can never succeed, however often the task runs.</summary>
    public static bool IsPermanent(Exception exception) => exception is InvalidTaskException or PermanentTaskException or UnwritableResultException;

    /// <summary>The answer for a run the consumer had to abandon (a handler it could not build, ...): the task is dead-lettered with it.</summary>
    public static string ConsumerProblem(Exception exception) =>
        $"consumer: could not finish the task: {exception?.Message} ({exception?.GetType().Name})";

    /// <summary>
    /// The value a handler returned as the result's JSON; a value that cannot be written as JSON (an unpaired surrogate
    /// escape in an element it read, a type the serializer refuses) throws <see cref="UnwritableResultException"/>.
    /// </summary>
    public static System.Text.Json.JsonElement ResultJson(object? value)
    {
        System.Text.Json.JsonElement element;
        try
        {
            element = value switch
            {
                null => TaskJson.EmptyObject,
                System.Text.Json.JsonElement json => json,
                _ => System.Text.Json.JsonSerializer.SerializeToElement(value, TaskJson.Options),
            };
        }
        catch (Exception ex) when (ex is System.Text.Json.JsonException or NotSupportedException or InvalidOperationException or ArgumentException)
        {
            throw new UnwritableResultException($"the handler returned a {value!.GetType().Name} that cannot be written as JSON: {ex.Message}");
        }
        if (element.ValueKind == System.Text.Json.JsonValueKind.Undefined)
            throw new UnwritableResultException("the handler returned an empty JsonElement (default); return null for no result");
        return TaskJson.IsUnicode(element)
            ? element
            : throw new UnwritableResultException("the handler returned JSON holding an unpaired surrogate escape such as \\ud800, which cannot be written again");
    }
}

/// <summary>A handler's return value that cannot be the result's JSON; the run fails as <c>result: ...</c>, not retried.</summary>
internal sealed class UnwritableResultException(string problem) : Exception("result: " + problem);
