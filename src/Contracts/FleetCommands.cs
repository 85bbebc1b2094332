namespace LaneQueue.Contracts;

/// <summary>Fleet commands built in one place, for the producer, the consumer's built-in handlers and the harness.</summary>
public static class FleetCommands
{
    /// <summary>The <see cref="FleetCommand.Interrupt"/> of <paramref name="sessionId"/>: yield, or with <paramref name="cancel"/> cancel.</summary>
    public static FleetCommand Interrupt(string sessionId, bool cancel) => new()
    {
        Command = FleetCommand.Interrupt,
        SessionId = sessionId,
        Mode = cancel ? FleetCommand.InterruptCancel : FleetCommand.InterruptYield,
    };
}
