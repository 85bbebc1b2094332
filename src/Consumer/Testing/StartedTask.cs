using LaneQueue.Contracts;

namespace LaneQueue.Consumer.Testing;

/// <summary>One start of a task in a <see cref="LaneQueueTestHarness"/>, in the order the harness started them.</summary>
/// <param name="TaskId">The task's id.</param>
/// <param name="Lane">Its lane.</param>
/// <param name="Attempt">Retries before this run (0 on the first run), as <see cref="TaskContext.Attempt"/>.</param>
/// <param name="At">When it started.</param>
public sealed record StartedTask(string TaskId, SessionLane Lane, int Attempt, DateTimeOffset At);
