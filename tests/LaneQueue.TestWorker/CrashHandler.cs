using LaneQueue.Consumer;

namespace LaneQueue.TestWorker;

/// <summary>
/// <c>crash</c>: ends the whole process at once (<see cref="Environment.FailFast(string)"/>), as a handler that crashes
/// the runtime would. Test tree only: the fault tests' worker registers it; no shipped binary has it.
/// </summary>
internal sealed class CrashHandler : ITaskHandler
{
    public const string CommandType = "crash";

    public Task<object?> HandleAsync(TaskContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        Environment.FailFast($"crash handler: task {context.Task.Id} asked this consumer to crash (test handler)");
        return Task.FromResult<object?>(null);
    }
}
