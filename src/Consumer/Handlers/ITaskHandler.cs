using System.Text.Json;
using LaneQueue.Contracts;

namespace LaneQueue.Consumer;

/// <summary>
/// Runs one kind of task (selected by <c>command_type</c>), reading the payload from <see cref="TaskContext.Task"/> itself.
/// The returned object becomes the result JSON (System.Text.Json, camelCase names); return
/// <see cref="TaskContext.Yield"/> to give the slot up. A thrown exception fails the run: it is retried per the retry
/// policy, then dead-lettered with a <c>failed</c> result; throw <see cref="PermanentTaskException"/> for a task that can never
/// succeed, which is not retried.
/// </summary>
public interface ITaskHandler
{
    Task<object?> HandleAsync(TaskContext context);
}

/// <summary>
/// Runs one kind of task with its payload deserialized into <typeparamref name="TPayload"/> (System.Text.Json web defaults:
/// camelCase, case-insensitive; missing required or non-nullable members refused). A payload that does not fit the type
/// is never retried: the task fails at once and goes to the lane's dead-letter queue with the reason (<c>payload: does not fit ...</c>);
/// the handler itself can refuse one the same way by throwing <see cref="PermanentTaskException"/>. Register it like any handler:
/// <c>AddHandler&lt;MyHandler&gt;("my-command")</c>.
/// </summary>
public interface ITaskHandler<in TPayload>
{
    Task<object?> HandleAsync(TPayload payload, TaskContext context);
}

/// <summary>What a handler gets: the task, and the tokens that stop it.</summary>
public sealed class TaskContext
{
    public required ExternalTask Task { get; init; }

    public required string ConsumerName { get; init; }

    /// <summary>Retries before this run (0 on the first run; results and events count attempts from 1).</summary>
    public int Attempt { get; init; }

    /// <summary>When this run started (after the task waited for its lane, rate limit and slot).</summary>
    public DateTimeOffset StartedAt { get; init; } = DateTimeOffset.UtcNow;

    /// <summary>How long this run may take: the task's <c>timeout_ms</c>, else the lane's; null for none.</summary>
    public long? TimeoutMs { get; init; }

    /// <summary>Milliseconds this run has left before its timeout, measured from <see cref="StartedAt"/>; null without a timeout.</summary>
    public long? RemainingMs() => TimeoutMs is { } ms ? ms - (long)(DateTimeOffset.UtcNow - StartedAt).TotalMilliseconds : null;

    /// <summary>Whether this run is past its timeout (the <see cref="CancellationToken"/> fires then too).</summary>
    public bool IsTimedOut() => RemainingMs() is <= 0;

    /// <summary>Fires on timeout, on cancellation of the task, and when the consumer stops past its drain time.</summary>
    public CancellationToken CancellationToken { get; init; }

    /// <summary>
    /// Fires when a preemptible task (<c>"preemptible": true</c>) should give its slot to higher-lane work. A handler that
    /// honours it returns <see cref="Yield"/> with a checkpoint; one that ignores it simply finishes.
    /// </summary>
    public CancellationToken YieldRequested { get; init; }

    /// <summary>Where to resume: the checkpoint this task last yielded with, or null on a fresh task.</summary>
    public JsonElement? Checkpoint => Task.Checkpoint;

    /// <summary>Return this from a handler to give up the slot; the task goes back to its lane and resumes from <paramref name="checkpoint"/>.</summary>
    public static TaskYield Yield(object? checkpoint) => new(checkpoint);
}

/// <summary>A handler's "I yield; resume me from here" (see <see cref="TaskContext.Yield"/>).</summary>
public sealed record TaskYield(object? Checkpoint);
