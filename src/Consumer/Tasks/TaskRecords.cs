using System.Text.Json;
using LaneQueue.Contracts;

namespace LaneQueue.Consumer;

/// <summary>
/// The result and the lifecycle event of a task as a consumer writes them, shared by the fleet's <see cref="TaskOutcome"/>
/// and the broker-free harness so the two cannot drift. <c>attempt</c> is the 0-based count of retries before the run;
/// results and events count attempts from 1.
/// </summary>
internal static class TaskRecords
{
    /// <param name="finishedAt">When the handler returned (its slot was free from then on); now when not given.</param>
    public static ExternalTaskResult Result(ExternalTask task, int attempt, DateTimeOffset startedAt, string status, string? error, JsonElement result, string consumer,
        DateTimeOffset? finishedAt = null) => new()
    {
        TaskId = task.Id,
        Lane = task.Lane,
        Success = status == TaskStatuses.Completed,
        Status = status,
        Result = result,
        Error = error,
        SessionId = task.SessionId,
        Consumer = consumer,
        StartedAt = startedAt,
        FinishedAt = finishedAt ?? DateTimeOffset.UtcNow,
        Attempts = attempt + 1,
    };

    public static TaskEvent Event(string name, ExternalTask task, int attempt, string? error, string consumer) => new()
    {
        Event = name,
        TaskId = task.Id,
        Lane = task.Lane,
        SessionId = task.SessionId,
        Consumer = consumer,
        Attempt = attempt + 1,
        Error = error,
    };

    /// <summary>
    /// The <c>command.started</c> event, with the task's payload when its JSON is at most <paramref name="payloadMaxBytes"/>
    /// (the history's copy of what ran; 0 keeps none) and the payload's size either way.
    /// </summary>
    public static TaskEvent Started(ExternalTask task, int attempt, string consumer, int payloadMaxBytes)
    {
        var bytes = System.Runtime.InteropServices.JsonMarshal.GetRawUtf8Value(task.Payload).Length; // no copy: runs for every start
        return Event(TaskEvent.Started, task, attempt, null, consumer) with
        {
            Payload = bytes <= payloadMaxBytes ? task.Payload : null,
            PayloadBytes = bytes,
        };
    }

    /// <summary>A <c>command.progress</c> event with what the handler reported.</summary>
    public static TaskEvent Progress(ExternalTask task, int attempt, string consumer, JsonElement progress) =>
        Event(TaskEvent.Progress, task, attempt, null, consumer) with { ProgressValue = progress };
}
