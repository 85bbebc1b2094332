using LaneQueue.Contracts;

namespace LaneQueue.Consumer;

/// <summary>Runs one kind of task (selected by <c>command_type</c>). The returned object becomes the result JSON.</summary>
public interface ITaskHandler
{
    Task<object?> HandleAsync(TaskContext context);
}

/// <summary>What a handler gets: the task, and a token that fires on timeout, cancellation or shutdown.</summary>
public sealed class TaskContext
{
    public required ExternalTask Task { get; init; }

    public required string ConsumerName { get; init; }

    public CancellationToken CancellationToken { get; init; }
}
