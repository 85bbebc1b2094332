namespace LaneQueue.Contracts;

/// <summary>A task that breaks the wire contract. <see cref="Field"/> names the offending field (or <c>body</c>).</summary>
public sealed class InvalidTaskException : Exception
{
    public InvalidTaskException(string field, string problem)
        : base($"{field}: {problem}")
    {
        Field = field;
        Problem = problem;
    }

    public InvalidTaskException() : this("body", "invalid task") { }

    public InvalidTaskException(string message) : this("body", message) { }

    public InvalidTaskException(string message, Exception innerException) : base(message, innerException)
    {
        Field = "body";
        Problem = message;
    }

    public string Field { get; } = "body";

    public string Problem { get; } = "";
}
