using LaneQueue.Contracts;

namespace LaneQueue.Producer;

/// <summary>
/// The fleet commands behind the schedule calls of <see cref="ILaneQueueProducer"/>, checked before anything is sent:
/// one copy for the producer (which publishes them to <see cref="BrokerNames.FleetState"/>) and the test harness (which
/// applies them to its own <see cref="ScheduleTable"/>). The command's <c>at</c> is left to the sender.
/// </summary>
public static class ScheduleCommands
{
    /// <summary><c>schedule_put</c>: adds or replaces a schedule.</summary>
    /// <exception cref="InvalidScheduleException">The schedule is invalid; names the field.</exception>
    public static FleetCommand Put(TaskSchedule schedule, int maxPayloadBytes)
    {
        TaskSchedules.Validate(schedule, maxPayloadBytes);
        return new FleetCommand { Command = FleetCommand.SchedulePut, ScheduleId = schedule.Id, Schedule = schedule };
    }

    /// <summary><c>schedule_pause</c>, <c>schedule_resume</c> or <c>schedule_remove</c> (<paramref name="command"/>) of a schedule id.</summary>
    /// <exception cref="InvalidScheduleException"><paramref name="scheduleId"/> cannot be a schedule id.</exception>
    public static FleetCommand For(string command, string scheduleId)
    {
        if (string.IsNullOrEmpty(scheduleId) || !TaskParser.IsValidId(scheduleId))
            throw new InvalidScheduleException("id", $"'{scheduleId}' is not a schedule id");
        return new FleetCommand { Command = command, ScheduleId = scheduleId };
    }
}
