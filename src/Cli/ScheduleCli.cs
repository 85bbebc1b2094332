using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using LaneQueue.Contracts;
using LaneQueue.Producer;

namespace LaneQueue.Cli;

/// <summary><c>schedule add|list|pause|resume|remove</c>: recurring schedules (docs/wire-contract.md §11).</summary>
static class ScheduleCli
{
    public static void AddTo(RootCommand root) =>
        root.Add(new Command("schedule", "Recurring schedules: a task fired by the fleet at every due time of a cron expression or interval")
        {
            Add(), List(), Change("pause", "Pause a schedule: no firings until resumed"),
            Change("resume", "Resume a paused schedule (missed due times per its catch-up policy)"), Change("remove", "Remove a schedule"),
        });

    /// <summary>The CLI option of each schedule field, for the error messages.</summary>
    static readonly Dictionary<string, string> OptionOf = new(StringComparer.Ordinal)
    {
        ["id"] = "--id", ["cron"] = "--cron", ["time_zone"] = "--tz", ["interval_ms"] = "--every", ["lane"] = "--lane",
        ["payload"] = "--payload", ["command_type"] = "--command-type", ["session_id"] = "--session", ["catch_up"] = "--catch-up",
    };

    static Command Add()
    {
        var id = new Option<string>("--id") { Description = "Schedule id (the firings' task ids are <id>:<due time, UTC>)", Required = true };
        var cron = new Option<string?>("--cron") { Description = "Cron expression: 6 fields with seconds ('*/10 * * * * *') or 5 ('0 2 * * *')" };
        var tz = new Option<string?>("--tz") { Description = "IANA time zone of --cron (e.g. Europe/Berlin; default UTC)" };
        var every = new Option<string?>("--every") { Description = "Fixed interval instead of --cron (e.g. 1s, 30s, 10m, 2h; at least 1s)" };
        var lane = CliRun.LaneOption();
        var commandType = new Option<string?>("--command-type") { Description = "Handler to run (e.g. sleep, echo)" };
        var payload = new Option<string>("--payload") { Description = "Payload as JSON, used as is for each firing", DefaultValueFactory = _ => "{}" };
        var session = new Option<string?>("--session") { Description = "Session id of the firings" };
        var catchUp = new Option<string>("--catch-up") { Description = "After downtime or a pause: skip (fire no missed due time older than 30 s) or once (fire the latest missed one)", DefaultValueFactory = _ => TaskSchedule.CatchUpSkip };
        var command = new Command("add", "Add a schedule, or replace the one with this id (needs a user that may send fleet commands: the admin user)")
        {
            id, cron, tz, every, lane, commandType, payload, session, catchUp,
        };
        command.SetAction(async (parse, ct) =>
        {
            var errors = parse.InvocationConfiguration.Error;
            if (CliRun.Lane(parse, lane) is not { } which)
                return ProducerCli.InvalidInput;
            long? intervalMs = null;
            if (parse.GetValue(every) is { } everyText && (intervalMs = ProducerCli.DurationMs(everyText)) is null)
            {
                await errors.WriteLineAsync($"error: --every '{everyText}' must be a whole number and a unit (ms, s, m or h), such as 1s, 30s, 10m or 2h");
                return ProducerCli.InvalidInput;
            }
            JsonElement body;
            try
            {
                body = TaskJson.ParseElement(parse.GetValue(payload)!);
            }
            catch (JsonException ex)
            {
                await errors.WriteLineAsync($"error: --payload is not valid JSON: {ex.Message}");
                return ProducerCli.InvalidInput;
            }
            var schedule = new TaskSchedule
            {
                Id = parse.GetValue(id)!,
                Cron = parse.GetValue(cron),
                TimeZone = parse.GetValue(tz),
                IntervalMs = intervalMs,
                Lane = which,
                CommandType = parse.GetValue(commandType),
                Payload = body,
                SessionId = parse.GetValue(session),
                CatchUp = parse.GetValue(catchUp),
            };
            var options = CliProducerOptions.From(parse);
            try
            {
                TaskSchedules.Validate(schedule, options.MaxPayloadBytes);
            }
            catch (InvalidScheduleException ex)
            {
                var option = OptionOf.GetValueOrDefault(ex.Field, ex.Field);
                await errors.WriteLineAsync($"error: {option}: {ex.Message[$"schedule {ex.Field}: ".Length..]}");
                return ProducerCli.InvalidInput;
            }
            return await CliRun.WithProducerAsync(parse, ct, async (producer, output) =>
            {
                await producer.AddScheduleAsync(schedule, ct);
                var next = TaskSchedules.NextDue(schedule, DateTimeOffset.UtcNow);
                await FleetCli.Report(parse, output, new { command = "schedule add", id = schedule.Id, next_due = next },
                    $"schedule {schedule.Id} added; first due {Shown(next)}");
                return ProducerCli.Ok;
            });
        });
        return command;
    }

    static Command List()
    {
        var command = new Command("list", "The schedules with their next due time and last firing");
        command.SetAction((parse, ct) => CliRun.WithProducerAsync(parse, ct, async (producer, output) =>
        {
            var schedules = await producer.ListSchedulesAsync(ct);
            if (parse.GetValue(ProducerCli.Json))
            {
                await output.WriteLineAsync(JsonSerializer.Serialize(schedules.Select(Json), TaskJson.Options));
                return ProducerCli.Ok;
            }
            await output.WriteLineAsync($"{"ID",-24}{"WHEN",-28}{"LANE",-9}{"STATE",-8}{"NEXT DUE (UTC)",-22}LAST FIRING");
            foreach (var s in schedules)
            {
                var when = s.Schedule.Cron is { } c ? $"cron {c}{(s.Schedule.TimeZone is { } z ? " " + z : "")}" : $"every {s.Schedule.IntervalMs} ms";
                await output.WriteLineAsync($"{s.Schedule.Id,-24}{when,-28}{s.Schedule.Lane.WireName(),-9}{(s.Paused ? "paused" : "active"),-8}{Shown(s.NextDue),-22}" +
                    (s.LastFiring is { } f ? $"{f.TaskId} ({Shown(f.At)} on {f.Consumer})" : "-"));
            }
            if (schedules.Count == 0)
                await output.WriteLineAsync("(no schedules)");
            return ProducerCli.Ok;
        }));
        return command;
    }

    static object Json(ScheduleInfo s) => new
    {
        id = s.Schedule.Id,
        cron = s.Schedule.Cron,
        time_zone = s.Schedule.TimeZone,
        interval_ms = s.Schedule.IntervalMs,
        lane = s.Schedule.Lane.WireName(),
        command_type = s.Schedule.CommandType,
        payload = s.Schedule.Payload,
        session_id = s.Schedule.SessionId,
        catch_up = s.Schedule.CatchUp ?? TaskSchedule.CatchUpSkip,
        paused = s.Paused,
        added_at = s.AddedAt,
        next_due = s.NextDue,
        last_firing = s.LastFiring,
    };

    static Command Change(string name, string description)
    {
        var id = new Option<string>("--id") { Description = "Schedule id", Required = true };
        var command = new Command(name, description) { id };
        command.SetAction((parse, ct) => CliRun.WithProducerAsync(parse, ct, async (producer, output) =>
        {
            var scheduleId = parse.GetValue(id)!;
            if (!TaskParser.IsValidId(scheduleId))
            {
                await parse.InvocationConfiguration.Error.WriteLineAsync($"error: --id '{scheduleId}' is not a schedule id");
                return ProducerCli.InvalidInput;
            }
            var known = (await producer.ListSchedulesAsync(ct)).Any(s => s.Schedule.Id == scheduleId);
            if (!known)
            {
                await parse.InvocationConfiguration.Error.WriteLineAsync($"error: --id '{scheduleId}': no such schedule (see 'lanequeue schedule list')");
                return ProducerCli.InvalidInput;
            }
            await (name switch
            {
                "pause" => producer.PauseScheduleAsync(scheduleId, ct),
                "resume" => producer.ResumeScheduleAsync(scheduleId, ct),
                _ => producer.RemoveScheduleAsync(scheduleId, ct),
            });
            await FleetCli.Report(parse, output, new { command = "schedule " + name, id = scheduleId }, $"schedule {scheduleId} {(name == "remove" ? "removed" : name + "d")}");
            return ProducerCli.Ok;
        }));
        return command;
    }

    static string Shown(DateTimeOffset? at) => at is { } t ? t.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) : "-";
}
