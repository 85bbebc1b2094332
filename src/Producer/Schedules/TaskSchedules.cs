using System.Globalization;
using System.Text.Json;
using Cronos;
using LaneQueue.Contracts;

namespace LaneQueue.Producer;

/// <summary>A schedule that cannot be kept; <see cref="Field"/> names the offending field (e.g. <c>cron</c>, <c>time_zone</c>).</summary>
public sealed class InvalidScheduleException : ArgumentException
{
    public InvalidScheduleException(string field, string problem)
        : base($"schedule {field}: {problem}")
    {
        Field = field;
    }

    public InvalidScheduleException() : this("schedule", "invalid") { }

    public InvalidScheduleException(string message) : this("schedule", message) { }

    public InvalidScheduleException(string message, Exception innerException) : base(message, innerException)
    {
        Field = "schedule";
    }

    public string Field { get; } = "schedule";
}

/// <summary>
/// The rules of recurring schedules, shared by the producer (validation, listing) and the firing monitor: due times (cron
/// through Cronos, with seconds and an IANA time zone; or a fixed interval counted from the Unix epoch, so every consumer
/// computes the same due times), firing ids and the catch-up decision.
/// </summary>
public static class TaskSchedules
{
    /// <summary>The shortest interval (and, in practice, the shortest cron step: one second).</summary>
    public const long MinIntervalMs = 1000;

    /// <summary>The longest interval: 366 days.</summary>
    public const long MaxIntervalMs = 366L * 24 * 3600 * 1000;

    /// <summary>Room in a task id for <c>:&lt;due&gt;</c> (<c>:yyyyMMddTHHmmss.fffZ</c>).</summary>
    public const int MaxIdLength = TaskParser.MaxIdLength - 24;

    /// <summary>Missed due times younger than this are each fired late; older ones follow the catch-up policy.</summary>
    public static readonly TimeSpan DefaultGrace = TimeSpan.FromSeconds(30);

    /// <summary>The de-duplication window of a firing (its <c>dedup_key</c> is its id): covers a re-firing within the grace period.</summary>
    public const long FiringDedupWindowMs = 60_000;

    /// <summary>Checks a schedule; throws <see cref="InvalidScheduleException"/> naming the field.</summary>
    public static void Validate(TaskSchedule schedule, int maxPayloadBytes = TaskParser.DefaultMaxPayloadBytes)
    {
        ArgumentNullException.ThrowIfNull(schedule);
        if (string.IsNullOrEmpty(schedule.Id))
            throw new InvalidScheduleException("id", "missing or empty");
        if (schedule.Id.Length > MaxIdLength)
            throw new InvalidScheduleException("id", $"{schedule.Id.Length} characters is over the limit of {MaxIdLength} (the firing ids add ':<due time>')");
        if (!TaskParser.IsValidId(schedule.Id))
            throw new InvalidScheduleException("id", $"'{schedule.Id}' may only hold letters, digits and . _ : @ / - and must start with a letter or digit");
        if (!Enum.IsDefined(schedule.Lane))
            throw new InvalidScheduleException("lane", $"{(int)schedule.Lane} is not a lane; expected one of {SessionLanes.NamesList}");
        if (schedule.Cron is not null && schedule.IntervalMs is not null)
            throw new InvalidScheduleException("cron", "and interval_ms are both given; give one of them");
        if (schedule.Cron is null && schedule.IntervalMs is null)
            throw new InvalidScheduleException("interval_ms", "missing: give a cron expression (cron) or a fixed interval (interval_ms, at least 1000)");
        if (schedule.IntervalMs is { } interval && interval is < MinIntervalMs or > MaxIntervalMs)
            throw new InvalidScheduleException("interval_ms", $"{interval} must be from {MinIntervalMs} (1 s) to {MaxIntervalMs} (366 days)");
        if (schedule.IntervalMs is not null && schedule.TimeZone is not null)
            throw new InvalidScheduleException("time_zone", "belongs to a cron expression; an interval counts in UTC");
        if (schedule.Cron is not null)
            ParseCron(schedule.Cron);
        Zone(schedule.TimeZone);
        if (schedule.CatchUp is not (null or TaskSchedule.CatchUpSkip or TaskSchedule.CatchUpOnce))
            throw new InvalidScheduleException("catch_up", $"'{schedule.CatchUp}' is not '{TaskSchedule.CatchUpSkip}' or '{TaskSchedule.CatchUpOnce}'");
        // The firing is a task: its rules (payload size, command type, session id) apply now rather than at every firing.
        try
        {
            TaskParser.Validate(FiringTask(schedule, new DateTimeOffset(2000, 1, 1, 0, 0, 0, TimeSpan.Zero)), maxPayloadBytes);
        }
        catch (InvalidTaskException ex)
        {
            throw new InvalidScheduleException(ex.Field, ex.Problem);
        }
    }

    /// <summary>Parses a cron expression: 6 fields (with seconds) or 5 (from minutes).</summary>
    public static CronExpression ParseCron(string cron)
    {
        ArgumentNullException.ThrowIfNull(cron);
        var fields = cron.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length;
        if (fields is not (5 or 6) && !cron.TrimStart().StartsWith('@'))
            throw new InvalidScheduleException("cron", $"'{cron}' has {fields} fields; expected 6 (second minute hour day-of-month month day-of-week) or 5 (without seconds)");
        try
        {
            return CronExpression.Parse(cron, fields == 6 ? CronFormat.IncludeSeconds : CronFormat.Standard);
        }
        catch (CronFormatException ex)
        {
            throw new InvalidScheduleException("cron", $"'{cron}' is not a cron expression: {ex.Message}");
        }
    }

    /// <summary>The time zone of a schedule (IANA id; null: UTC).</summary>
    public static TimeZoneInfo Zone(string? timeZone)
    {
        if (timeZone is null)
            return TimeZoneInfo.Utc;
        try
        {
            return TimeZoneInfo.FindSystemTimeZoneById(timeZone);
        }
        catch (Exception ex) when (ex is TimeZoneNotFoundException or InvalidTimeZoneException)
        {
            throw new InvalidScheduleException("time_zone", $"'{timeZone}' is not a known time zone; use an IANA id such as Europe/Berlin or UTC");
        }
    }

    /// <summary>The first due time strictly after <paramref name="after"/>, or null when there is none.</summary>
    public static DateTimeOffset? NextDue(TaskSchedule schedule, DateTimeOffset after)
    {
        ArgumentNullException.ThrowIfNull(schedule);
        if (schedule.IntervalMs is { } interval)
        {
            var ms = after.ToUnixTimeMilliseconds();
            var next = (Math.Floor((double)ms / interval) + 1) * interval;
            var due = DateTimeOffset.FromUnixTimeMilliseconds((long)next);
            return due > after ? due : due.AddMilliseconds(interval);
        }
        return ParseCron(schedule.Cron!).GetNextOccurrence(after, Zone(schedule.TimeZone), inclusive: false);
    }

    /// <summary>The due times in (<paramref name="after"/>, <paramref name="upTo"/>], at most <paramref name="limit"/>.</summary>
    public static List<DateTimeOffset> DueBetween(TaskSchedule schedule, DateTimeOffset after, DateTimeOffset upTo, int limit = 10_000)
    {
        var due = new List<DateTimeOffset>();
        for (var next = NextDue(schedule, after); next is { } at && at <= upTo && due.Count < limit; next = NextDue(schedule, at))
            due.Add(at);
        return due;
    }

    /// <summary>The latest due time in (<paramref name="after"/>, <paramref name="upTo"/>], or null (looks back in growing steps).</summary>
    public static DateTimeOffset? LatestDue(TaskSchedule schedule, DateTimeOffset after, DateTimeOffset upTo)
    {
        if (upTo <= after)
            return null;
        foreach (var span in new[] { TimeSpan.FromMinutes(1), TimeSpan.FromHours(1), TimeSpan.FromDays(1), TimeSpan.FromDays(32), TimeSpan.FromDays(400), TimeSpan.MaxValue })
        {
            var from = span == TimeSpan.MaxValue || upTo - after <= span ? after : upTo - span;
            DateTimeOffset? latest = null;
            for (var next = NextDue(schedule, from); next is { } at && at <= upTo; next = NextDue(schedule, at))
                latest = at;
            if (latest is not null || from == after)
                return latest;
        }
        return null;
    }

    /// <summary>
    /// The due times to fire now: those after <paramref name="since"/> (the last firing, or when the schedule was added or
    /// replaced) up to <paramref name="now"/>. Each one younger than <paramref name="grace"/> fires (late, if the monitor was
    /// away or the schedule paused); of the older ones, <c>skip</c> fires none and <c>once</c> the latest.
    /// </summary>
    /// <param name="resumedAt">When the schedule was last resumed (or added): due times before it were not missed but paused, so
    /// they are never fired one by one, only as the catch-up policy says.</param>
    public static List<DateTimeOffset> DueToFire(TaskSchedule schedule, DateTimeOffset since, DateTimeOffset now, TimeSpan grace, DateTimeOffset? resumedAt = null)
    {
        ArgumentNullException.ThrowIfNull(schedule);
        var fire = new List<DateTimeOffset>();
        var graceStart = resumedAt is { } resumed && resumed > now - grace ? resumed : now - grace;
        if (schedule.CatchUp == TaskSchedule.CatchUpOnce && LatestDue(schedule, since, graceStart) is { } missed)
            fire.Add(missed);
        fire.AddRange(DueBetween(schedule, since > graceStart ? since : graceStart, now));
        return fire;
    }

    /// <summary>A firing's task id: <c>&lt;schedule id&gt;:&lt;due, UTC, yyyyMMddTHHmmssZ&gt;</c> (with <c>.fff</c> when the due time has milliseconds).</summary>
    public static string FiringId(string scheduleId, DateTimeOffset due)
    {
        var utc = due.UtcDateTime;
        return scheduleId + ":" + utc.ToString(utc.Millisecond == 0 ? "yyyyMMdd'T'HHmmss'Z'" : "yyyyMMdd'T'HHmmss'.'fff'Z'", CultureInfo.InvariantCulture);
    }

    /// <summary>The task of the firing of <paramref name="schedule"/> due at <paramref name="due"/>, de-duplicated by its id.</summary>
    public static ExternalTask FiringTask(TaskSchedule schedule, DateTimeOffset due)
    {
        ArgumentNullException.ThrowIfNull(schedule);
        var id = FiringId(schedule.Id, due);
        return new ExternalTask
        {
            Id = id,
            Lane = schedule.Lane,
            CommandType = schedule.CommandType,
            Payload = schedule.Payload.ValueKind == JsonValueKind.Undefined ? TaskJson.EmptyObject : schedule.Payload,
            SessionId = schedule.SessionId,
            DedupKey = id,
            DedupWindowMs = FiringDedupWindowMs,
        };
    }
}
