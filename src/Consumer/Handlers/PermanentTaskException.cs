namespace LaneQueue.Consumer;

/// <summary>
/// Thrown by a handler for a task that can never succeed, however often it runs (a payload the handler cannot accept, a
/// record that does not exist): the task is not retried. It ends at once with a <c>failed</c> result whose error is
/// <c>field: problem</c> (<see cref="Field"/> defaults to <c>payload</c>) and waits in its lane's dead-letter queue.
/// Any other exception fails the run and is retried per the retry policy.
/// </summary>
public class PermanentTaskException : Exception
{
    /// <summary>A task that cannot succeed because of <paramref name="field"/> (e.g. <c>payload</c>): <paramref name="problem"/>.</summary>
    public PermanentTaskException(string field, string problem)
        : base($"{field}: {problem}")
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(field);
        Field = field;
        Problem = problem;
    }

    /// <summary>A task whose payload cannot succeed: <paramref name="problem"/>.</summary>
    public PermanentTaskException(string problem) : this(DefaultField, problem) { }

    /// <summary>A task whose payload cannot succeed, for the reason <paramref name="innerException"/> gives.</summary>
    public PermanentTaskException(string problem, Exception innerException)
        : base($"{DefaultField}: {problem}", innerException)
    {
        Field = DefaultField;
        Problem = problem;
    }

    /// <summary>A task whose payload cannot succeed.</summary>
    public PermanentTaskException() : this("the handler cannot accept it") { }

    const string DefaultField = "payload";

    /// <summary>The field at fault (<c>payload</c> unless the handler names another).</summary>
    public string Field { get; } = DefaultField;

    /// <summary>What is wrong with it.</summary>
    public string Problem { get; } = "";
}
