using System.CommandLine;
using System.Text.Json;
using LaneQueue.Contracts;

using LaneQueue.Producer;

namespace LaneQueue.Cli;

/// <summary><c>wait</c>, <c>task</c>, <c>stats</c>, <c>pause</c>, <c>resume</c>, <c>cancel</c>, <c>interrupt</c>, <c>drain</c>, <c>handler set</c>.</summary>
static class FleetCli
{
    public static void AddTo(RootCommand root)
    {
        root.Add(Wait());
        root.Add(TaskCommand());
        root.Add(Stats());
        root.Add(PauseOrResume("pause", "Pause a lane on every consumer (also those that start later)", pause: true));
        root.Add(PauseOrResume("resume", "Resume a paused lane on every consumer", pause: false));
        root.Add(Cancel());
        root.Add(Interrupt());
        root.Add(Drain());
        root.Add(Handler());
    }

    static Command Wait()
    {
        var id = new Option<string>("--id") { Description = "Task id", Required = true };
        var timeout = new Option<double>("--timeout") { Description = "Seconds to wait", DefaultValueFactory = _ => 60 };
        var command = new Command("wait", "Wait for the result of a task (at once when it already finished: from the task history)") { id, timeout };
        command.SetAction((parse, ct) => CliRun.WithProducerAsync(parse, ct, async (producer, output) =>
        {
            // Listen first, then look in the history: a result published in between is caught by one or the other.
            var result = await producer.WatchResultAsync(parse.GetValue(id)!, ct);
            ExternalTaskResult done;
            try
            {
                done = (await producer.GetTaskHistoryAsync(parse.GetValue(id)!, cancellationToken: ct)).Final
                    ?? await result.WaitAsync(TimeSpan.FromSeconds(parse.GetValue(timeout)), ct);
            }
            catch (TimeoutException)
            {
                throw new TimeoutException($"no result for task '{parse.GetValue(id)}' within {parse.GetValue(timeout)} s");
            }
            await output.WriteLineAsync(parse.GetValue(ProducerCli.Json)
                ? JsonSerializer.Serialize(done, TaskJson.Options)
                : $"{done.TaskId}: {done.Status} on {done.Consumer} after {done.Attempts} attempt(s){(done.Error is null ? "" : ": " + done.Error)}");
            return done.Success ? ProducerCli.Ok : ProducerCli.TaskFailed;
        }));
        return command;
    }

    /// <summary><c>task show --id X</c>: the task's timeline and result from the history stream.</summary>
    static Command TaskCommand()
    {
        var id = new Option<string>("--id") { Description = "Task id", Required = true };
        var since = new Option<double?>("--since-hours") { Description = "How far back to look (hours; default: the whole history, LaneQueue__HistoryMaxAge, 7 days unless set)" };
        var show = new Command("show", "A task's timeline: submitted/started on which consumer, retries with errors, preempted, the end, its result") { id, since };
        show.SetAction((parse, ct) => CliRun.WithProducerAsync(parse, ct, async (producer, output) =>
        {
            var history = await producer.GetTaskHistoryAsync(parse.GetValue(id)!, parse.GetValue(since) is { } hours ? TimeSpan.FromHours(hours) : null, ct);
            if (parse.GetValue(ProducerCli.Json))
            {
                await output.WriteLineAsync(JsonSerializer.Serialize(history, TaskJson.Options));
                return history.Events.Count + history.Results.Count == 0 ? ProducerCli.TimedOut : ProducerCli.Ok;
            }
            if (history.Events.Count + history.Results.Count == 0)
            {
                await output.WriteLineAsync($"{history.TaskId}: nothing in the history (not run yet, older than the history keeps, or another vhost)");
                return ProducerCli.TimedOut;
            }
            await output.WriteLineAsync($"task {history.TaskId}");
            foreach (var e in history.Events)
                await output.WriteLineAsync($"  {e.At:u}  {e.Event,-26} attempt {e.Attempt} on {e.Consumer}" +
                    (e.ProgressValue is { } progress ? "  " + TaskWatchCli.Shown(progress) : e.Error is null ? "" : ": " + e.Error));
            if (history.Payload is { } payload)
                await output.WriteLineAsync($"  payload: {JsonSerializer.Serialize(payload, TaskJson.Options)}");
            else if (history.PayloadBytes is { } size)
                await output.WriteLineAsync($"  payload: {size} bytes, not kept (larger than the consumer's LaneQueue:HistoryPayloadMaxBytes)");
            if (history.Final is { } final)
            {
                await output.WriteLineAsync($"  result: {final.Status} after {final.Attempts} attempt(s) on {final.Consumer}{(final.Error is null ? "" : ": " + final.Error)}");
                await output.WriteLineAsync($"  {JsonSerializer.Serialize(final.Result, TaskJson.Options)}");
            }
            return ProducerCli.Ok;
        }));
        return new Command("task", "Look tasks up in the history, or follow one as it runs") { show, TaskWatchCli.Watch() };
    }

    static Command Stats()
    {
        var watch = new Option<bool>("--watch") { Description = "Refresh until Ctrl+C" };
        var iterations = new Option<int>("--iterations") { Description = "With --watch: stop after this many refreshes (0 = never)", DefaultValueFactory = _ => 0 };
        var listen = new Option<double>("--listen") { Description = "Seconds to listen for consumer heartbeats", DefaultValueFactory = _ => 2.5 };
        var command = new Command("stats", "Lanes across the fleet: pending (ready at the broker), held (delivered, waiting in a consumer for a slot), active/max, mode, paused and why, counts; consumers online") { watch, iterations, listen };
        command.SetAction((parse, ct) => CliRun.WithProducerAsync(parse, ct, async (producer, output) =>
        {
            var round = 0;
            do
            {
                var stats = await producer.ReadStatsAsync(TimeSpan.FromSeconds(parse.GetValue(listen)), ct);
                if (parse.GetValue(ProducerCli.Json))
                    await output.WriteLineAsync(JsonSerializer.Serialize(stats, TaskJson.Options));
                else
                {
                    if (parse.GetValue(watch) && !Console.IsOutputRedirected)
                        await output.WriteAsync("\u001b[2J\u001b[H");
                    await output.WriteAsync(Table(stats));
                }
                round++;
            }
            while (parse.GetValue(watch) && (parse.GetValue(iterations) == 0 || round < parse.GetValue(iterations)) && !ct.IsCancellationRequested);
            return ProducerCli.Ok;
        }));
        return command;
    }

    public static string Table(QueueStats stats)
    {
        ArgumentNullException.ThrowIfNull(stats);
        var lines = new List<string>
        {
            $"{"LANE",-9}{"PENDING",8}{"HELD",6}{"ACTIVE/MAX",12}  {"MODE",-9}{"PAUSED",-8}{"DONE",8}{"FAILED",8}{"DEAD",6}{"DLQ",6}  WHY",
        };
        foreach (var lane in stats.Lanes)
        {
            var paused = stats.Consumers.Count == 0 ? "-" : $"{lane.PausedOn}/{stats.Consumers.Count}";
            lines.Add($"{lane.Lane,-9}{lane.Pending?.ToString() ?? "-",8}{lane.Waiting,6}{$"{lane.Active}/{lane.MaxConcurrency}",12}  {lane.HandlerMode,-9}{paused,-8}{lane.Completed,8}{lane.Failed,8}{lane.DeadLettered,6}{lane.DeadLettersWaiting,6}  {string.Join("; ", lane.PausedReasons)}");
        }
        lines.Add($"consumers online: {stats.Consumers.Count}{(stats.Consumers.Count == 0 ? "" : " (" + string.Join(", ", stats.Consumers.Select(c => c.Consumer)) + ")")}");
        lines.Add($"totals: pending {stats.TotalPending} (and {stats.TotalWaiting} held by consumers), active {stats.TotalActive}, external pending {stats.ExternalPending} (counts from the {stats.CountsFrom})");
        return string.Join(Environment.NewLine, lines) + Environment.NewLine;
    }

    static Command PauseOrResume(string name, string description, bool pause)
    {
        var lane = CliRun.LaneOption();
        var command = new Command(name, description) { lane };
        command.SetAction((parse, ct) => CliRun.WithProducerAsync(parse, ct, async (producer, output) =>
        {
            if (CliRun.Lane(parse, lane) is not { } which)
                return ProducerCli.InvalidInput;
            await (pause ? producer.PauseLaneAsync(which, ct) : producer.ResumeLaneAsync(which, ct));
            await Report(parse, output, new { command = name, lane = which.WireName() }, $"lane {which.WireName()} {(pause ? "paused" : "resumed")} on every consumer");
            return ProducerCli.Ok;
        }));
        return command;
    }

    static Command Cancel()
    {
        var id = new Option<string?>("--id") { Description = "Task to cancel" };
        var session = new Option<string?>("--session") { Description = "Cancel every task of this session created before now" };
        var command = new Command("cancel", "Cancel a task (waiting: skipped; running: its token fires) or a whole session") { id, session };
        command.SetAction((parse, ct) => CliRun.WithProducerAsync(parse, ct, async (producer, output) =>
        {
            var (taskId, sessionId) = (parse.GetValue(id), parse.GetValue(session));
            if (taskId is null == sessionId is null)
            {
                await parse.InvocationConfiguration.Error.WriteLineAsync("error: give exactly one of --id or --session");
                return ProducerCli.InvalidInput;
            }
            await (taskId is not null ? producer.CancelTaskAsync(taskId, ct) : producer.CancelSessionAsync(sessionId!, ct));
            await Report(parse, output, new { command = "cancel", task_id = taskId, session_id = sessionId }, $"cancel sent for {(taskId is not null ? "task " + taskId : "session " + sessionId)}");
            return ProducerCli.Ok;
        }));
        return command;
    }

    static Command Interrupt()
    {
        var session = new Option<string>("--session") { Description = "The session to interrupt", Required = true };
        var cancel = new Option<bool>("--cancel") { Description = "Cancel its running tasks instead of asking them to yield" };
        var command = new Command("interrupt",
            "Interrupt a session on every consumer: its running preemptible tasks yield (checkpoint, back to their lane, resume later); --cancel cancels its running tasks")
            { session, cancel };
        command.SetAction((parse, ct) => CliRun.WithProducerAsync(parse, ct, async (producer, output) =>
        {
            var sessionId = parse.GetValue(session)!;
            await producer.InterruptSessionAsync(sessionId, parse.GetValue(cancel), ct);
            var mode = parse.GetValue(cancel) ? FleetCommand.InterruptCancel : FleetCommand.InterruptYield;
            await Report(parse, output, new { command = "interrupt", session_id = sessionId, mode }, $"interrupt ({mode}) sent for session {sessionId}");
            return ProducerCli.Ok;
        }));
        return command;
    }

    static Command Drain()
    {
        var consumer = new Option<string>("--consumer") { Description = "Consumer name (see stats)", Required = true };
        var command = new Command("drain", "Ask one consumer to stop taking tasks, finish running ones, return the rest and exit") { consumer };
        command.SetAction((parse, ct) => CliRun.WithProducerAsync(parse, ct, async (producer, output) =>
        {
            await producer.DrainConsumerAsync(parse.GetValue(consumer)!, ct);
            await Report(parse, output, new { command = "drain", consumer = parse.GetValue(consumer) }, $"drain sent to {parse.GetValue(consumer)}");
            return ProducerCli.Ok;
        }));
        return command;
    }

    static Command Handler()
    {
        var lane = CliRun.LaneOption();
        var mode = new Option<string>("--mode") { Description = "internal, external or hybrid", Required = true };
        var timeout = new Option<long?>("--timeout-ms") { Description = "How long an external worker may take" };
        var set = new Command("set", "Set a lane's handler mode on every consumer") { lane, mode, timeout };
        set.SetAction((parse, ct) => CliRun.WithProducerAsync(parse, ct, async (producer, output) =>
        {
            if (CliRun.Lane(parse, lane) is not { } which)
                return ProducerCli.InvalidInput;
            if (!Enum.TryParse<TaskHandlerMode>(parse.GetValue(mode), ignoreCase: true, out var parsed) || !Enum.IsDefined(parsed))
            {
                await parse.InvocationConfiguration.Error.WriteLineAsync($"error: --mode '{parse.GetValue(mode)}' is not internal, external or hybrid");
                return ProducerCli.InvalidInput;
            }
            await producer.SetLaneHandlerAsync(which, parsed, parse.GetValue(timeout), ct);
            await Report(parse, output, new { command = "handler set", lane = which.WireName(), mode = parsed.ToString().ToLowerInvariant() }, $"lane {which.WireName()} handler mode set to {parsed.ToString().ToLowerInvariant()}");
            return ProducerCli.Ok;
        }));
        return new Command("handler", "Lane handler modes") { set };
    }

    public static Task Report(ParseResult parse, TextWriter output, object json, string text) =>
        output.WriteLineAsync(parse.GetValue(ProducerCli.Json) ? JsonSerializer.Serialize(json) : text);
}
