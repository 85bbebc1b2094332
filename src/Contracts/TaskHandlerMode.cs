namespace LaneQueue.Contracts;

/// <summary>How a lane's tasks run (the reference's <c>TaskHandlerMode</c>); also the <c>mode</c> of a <c>set_handler</c> fleet command.</summary>
public enum TaskHandlerMode
{
    /// <summary>Run by a C# handler in the consumer.</summary>
    Internal,

    /// <summary>Announced to external workers, which complete it; the lane slot is held meanwhile.</summary>
    External,

    /// <summary>Run internally and announced too.</summary>
    Hybrid,
}
