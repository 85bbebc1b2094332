using System.Text.Json;
using LaneQueue.Contracts;

namespace LaneQueue.Consumer;

/// <summary>Runs one kind of task (selected by <c>command_type</c>). The returned object becomes the result JSON.</summary>
public interface ITaskHandler
{
    Task<object?> HandleAsync(TaskContext context);
}

/// <summary>What a handler gets: the task, and the tokens that stop it.</summary>
public sealed class TaskContext
{
    public required ExternalTask Task { get; init; }

    public required string ConsumerName { get; init; }

    /// <summary>Retries before this run (0 on the first run).</summary>
    public int Attempt { get; init; }

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
