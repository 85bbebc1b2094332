using LaneQueue.Contracts;
using Microsoft.Extensions.Logging;

namespace LaneQueue.Consumer;

/// <summary>Every log event of the consumer, with stable event ids. Payloads are never logged.</summary>
internal static partial class Log
{
    [LoggerMessage(1000, LogLevel.Information, "Consumer {ConsumerName} starting: topology {Topology}, broker {Broker}, slot budget {SlotBudget}")]
    public static partial void Starting(ILogger logger, string consumerName, LaneTopology topology, string broker, int slotBudget);

    [LoggerMessage(1001, LogLevel.Debug, "Task {TaskId} started in lane {Lane} (waited {WaitMs} ms)")]
    public static partial void TaskStarted(ILogger logger, string taskId, string lane, long waitMs);

    [LoggerMessage(1002, LogLevel.Debug, "Task {TaskId} completed in lane {Lane} in {RunMs} ms")]
    public static partial void TaskCompleted(ILogger logger, string taskId, string lane, long runMs);

    [LoggerMessage(1003, LogLevel.Warning, "Task {TaskId} in lane {Lane} ended {Status}: {Error}; moved to the dead-letter queue")]
    public static partial void TaskFailed(ILogger logger, string taskId, string lane, string status, string error);

    [LoggerMessage(1009, LogLevel.Information, "No result for task {TaskId}: {Reason}")]
    public static partial void AnswerSkipped(ILogger logger, string taskId, string reason);

    [LoggerMessage(1010, LogLevel.Error, "Could not publish the result of dead-lettered task {TaskId} ({Error}); it waits in the dead-letter queue without one")]
    public static partial void AnswerFailed(ILogger logger, string taskId, string error);

    [LoggerMessage(1004, LogLevel.Warning, "Rejected a message from {Queue}: {Reason}; moved to the dead-letter queue")]
    public static partial void MessageRejected(ILogger logger, string queue, string reason);

    [LoggerMessage(1005, LogLevel.Information, "Task {TaskId} in lane {Lane} will retry in {DelayMs} ms (attempt {Attempt}): {Error}")]
    public static partial void TaskRetrying(ILogger logger, string taskId, string lane, long delayMs, int attempt, string error);

    [LoggerMessage(1006, LogLevel.Information, "Task {TaskId} in lane {Lane} skipped: {Reason}")]
    public static partial void TaskSkipped(ILogger logger, string taskId, string lane, string reason);

    [LoggerMessage(1007, LogLevel.Information, "Task {TaskId} in lane {Lane} yielded to higher-lane work; back in its lane with a checkpoint")]
    public static partial void TaskYielded(ILogger logger, string taskId, string lane);

    [LoggerMessage(1008, LogLevel.Information, "Asked task {TaskId} in lane {Lane} to yield: lane {Waiting} has work and no slot is free")]
    public static partial void YieldRequested(ILogger logger, string taskId, string lane, string waiting);

    [LoggerMessage(1200, LogLevel.Information, "Fleet command {Command} {Target} applied ({Cancelled} running tasks cancelled)")]
    public static partial void FleetCommandApplied(ILogger logger, string command, string target, int cancelled);

    [LoggerMessage(1202, LogLevel.Information, "Session {Session} interrupted ({Mode}): {Asked} running tasks asked here")]
    public static partial void SessionInterrupted(ILogger logger, string session, string mode, int asked);

    [LoggerMessage(1201, LogLevel.Warning, "Ignored an unreadable fleet command: {Error}")]
    public static partial void FleetCommandIgnored(ILogger logger, string error);

    [LoggerMessage(1102, LogLevel.Warning, "Lane gate could not read queue depths: {Error}; keeping the current lane states")]
    public static partial void GateCheckFailed(ILogger logger, string error);

    [LoggerMessage(1103, LogLevel.Information, "Lane {Lane} pressure: {Depth} ready messages (threshold {Threshold})")]
    public static partial void LanePressure(ILogger logger, string lane, long depth, int threshold);

    [LoggerMessage(1104, LogLevel.Information, "Lane {Lane} idle")]
    public static partial void LaneIdle(ILogger logger, string lane);

    [LoggerMessage(1105, LogLevel.Warning, "Queue depth alert: lane {Lane} is {Level} with {Depth} ready (warning at {Warning}, critical at {Critical})")]
    public static partial void DepthAlert(ILogger logger, string lane, string level, long depth, int warning, int critical);

    [LoggerMessage(1106, LogLevel.Warning, "Dead-letter queue of lane {Lane} holds {Depth} messages (DlqMaxSize {Max}); nothing is evicted - redrive or purge it")]
    public static partial void DeadLettersFull(ILogger logger, string lane, long depth, int max);

    [LoggerMessage(1107, LogLevel.Information, "Consumer {Consumer} is the fleet monitor: it reads the lane depths for the fleet and broadcasts the lane states")]
    public static partial void MonitorElected(ILogger logger, string consumer);

    [LoggerMessage(1108, LogLevel.Information, "Consumer {Consumer} is no longer the fleet monitor: {Reason}")]
    public static partial void MonitorLost(ILogger logger, string consumer, string reason);

    [LoggerMessage(1110, LogLevel.Warning, "Answering broker dead letters stopped ({Error}); this consumer subscribes again in {Seconds} s (another consumer answers meanwhile)")]
    public static partial void BrokerDeadLettersInterrupted(ILogger logger, string error, double seconds);

    [LoggerMessage(1109, LogLevel.Warning, "Ignored an unreadable lane state broadcast: {Error}")]
    public static partial void LaneStatesIgnored(ILogger logger, string error);

    [LoggerMessage(1011, LogLevel.Warning, "Could not read the task history for {Count} redelivered task(s): {Error}; they run again (at least once)")]
    public static partial void RedeliveryCheckFailed(ILogger logger, int count, string error);

    [LoggerMessage(1300, LogLevel.Warning, "The bus did not stop within {Seconds} s; shutting down without it (unacked deliveries go back to their queues when the connection closes)")]
    public static partial void BusStopTimedOut(ILogger logger, double seconds);

    [LoggerMessage(1400, LogLevel.Information, "Fleet limit {Setting}: created {TokenQueue} with {Tokens} tokens")]
    public static partial void FleetLimitCreated(ILogger logger, string tokenQueue, int tokens, string setting);

    [LoggerMessage(1401, LogLevel.Warning, "The fleet limits lane {Lane} ({TokenQueue} exists) but this consumer has no FleetLimits:{Lane}:{Limit}: its {Lane} tasks do not count against the fleet's limit")]
    public static partial void FleetLimitNotSet(ILogger logger, string lane, string limit, string tokenQueue);

    [LoggerMessage(1402, LogLevel.Warning, "Fleet limits: no token can be taken now ({Error}); tasks of limited lanes wait and try again")]
    public static partial void FleetLimitsUnreachable(ILogger logger, string error);

    [LoggerMessage(1500, LogLevel.Information, "Task {TaskId} in lane {Lane} delayed: waits {WaitMs} ms in the delay tree ({Hops} hops) before it joins its lane")]
    public static partial void TaskDelayed(ILogger logger, string taskId, string lane, long waitMs, int hops);

    [LoggerMessage(1600, LogLevel.Information, "Schedule {ScheduleId} fired for {Due}: task {TaskId}")]
    public static partial void ScheduleFired(ILogger logger, string scheduleId, string due, string taskId);

    [LoggerMessage(1601, LogLevel.Information, "Schedules: this consumer fires them now (monitor); last firings of {Count} schedules read in {Ms} ms")]
    public static partial void SchedulesTakenOver(ILogger logger, int count, long ms);

    [LoggerMessage(1602, LogLevel.Warning, "Schedules: firing failed ({Error}); trying again")]
    public static partial void ScheduleFiringFailed(ILogger logger, string error);
}
