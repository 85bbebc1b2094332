namespace LaneQueue.Consumer;

/// <summary>
/// <c>crash</c>: ends the whole process at once (<see cref="Environment.FailFast(string)"/>), as a handler that crashes
/// the runtime would. Registered only with <c>LaneQueue:EnableTestHandlers=true</c> (fault tests); never in production.
/// </summary>
public sealed class CrashHandler : ITaskHandler
{
    public const string CommandType = "crash";

    /// <summary>Configuration key that registers the test handlers.</summary>
    public const string EnableKey = "LaneQueue:EnableTestHandlers";

    public Task<object?> HandleAsync(TaskContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        Environment.FailFast($"crash handler: task {context.Task.Id} asked this consumer to crash (test handler)");
        return Task.FromResult<object?>(null);
    }
}
