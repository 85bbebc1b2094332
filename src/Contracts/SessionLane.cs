using System.Diagnostics.CodeAnalysis;

namespace LaneQueue.Contracts;

/// <summary>The four lanes, highest priority first. The numeric value is the lane's priority (0 = highest).</summary>
public enum SessionLane
{
    Control = 0,
    Query = 1,
    Execute = 2,
    Generate = 3,
}

public static class SessionLanes
{
    /// <summary>All lanes, highest priority first.</summary>
    public static IReadOnlyList<SessionLane> All { get; } = [SessionLane.Control, SessionLane.Query, SessionLane.Execute, SessionLane.Generate];

    /// <summary>The lane's name on the wire and in routing keys: <c>control</c>, <c>query</c>, <c>execute</c>, <c>generate</c>.</summary>
    public static string WireName(this SessionLane lane) => lane switch
    {
        SessionLane.Control => "control",
        SessionLane.Query => "query",
        SessionLane.Execute => "execute",
        SessionLane.Generate => "generate",
        _ => throw new ArgumentOutOfRangeException(nameof(lane), lane, "not a lane"),
    };

    /// <summary>0 for control (highest) to 3 for generate (lowest).</summary>
    public static int Priority(this SessionLane lane) => (int)lane;

    /// <summary>RabbitMQ message priority for the priority-queue topology: higher number = served first.</summary>
    public static byte MessagePriority(this SessionLane lane) => (byte)(All.Count - 1 - (int)lane);

    /// <summary>Parses a wire name exactly (lower case).</summary>
    public static bool TryParse(string? name, [NotNullWhen(true)] out SessionLane? lane)
    {
        lane = name switch
        {
            "control" => SessionLane.Control,
            "query" => SessionLane.Query,
            "execute" => SessionLane.Execute,
            "generate" => SessionLane.Generate,
            _ => null,
        };
        return lane is not null;
    }

    public static string NamesList => string.Join(", ", All.Select(WireName));
}
