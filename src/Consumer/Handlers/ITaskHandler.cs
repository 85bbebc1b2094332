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

    /// <summary>This run's progress reports (null where nobody listens: a context a test builds by hand).</summary>
    internal ProgressReports? Progress { get; init; }

    /// <summary>
    /// Reports how far the task has got: published as a <c>command.progress.&lt;lane&gt;</c> event, kept in the task history,
    /// shown on the dashboard's task page and by <c>lanequeue task watch</c>. <paramref name="progress"/> is any JSON value of at most
    /// 4 KiB (<see cref="TaskEvent.ProgressMaxBytes"/>). Throttled per task to one event per 100 ms: a report sooner than
    /// that replaces the one waiting, and the latest always goes out (at the latest when the run ends, before its result).
    /// Best effort like every lifecycle event; it never waits for the broker's confirm.
    /// </summary>
    /// <exception cref="ArgumentException">The value is larger than 4 KiB as JSON or cannot be written as JSON.</exception>
    public Task ReportProgressAsync(object? progress)
    {
        var json = ProgressReports.Json(progress);
        return Progress?.ReportAsync(json) ?? System.Threading.Tasks.Task.CompletedTask;
    }

    /// <summary>Reports <c>{"percent": <paramref name="percent"/>, "message": <paramref name="message"/>}</c>; see <see cref="ReportProgressAsync(object?)"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="percent"/> is not a number from 0 to 100.</exception>
    public Task ReportProgressAsync(double percent, string? message = null)
    {
        var json = ProgressReports.Percent(percent, message);
        return Progress?.ReportAsync(json) ?? System.Threading.Tasks.Task.CompletedTask;
    }

    /// <summary>Return this from a handler to give up the slot; the task goes back to its lane and resumes from <paramref name="checkpoint"/>.</summary>
    public static TaskYield Yield(object? checkpoint) => new(checkpoint);
}

/// <summary>A handler's "I yield; resume me from here" (see <see cref="TaskContext.Yield"/>).</summary>
public sealed record TaskYield(object? Checkpoint);
