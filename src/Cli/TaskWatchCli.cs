using System.CommandLine;
using System.Text.Json;
using LaneQueue.Contracts;
using LaneQueue.Producer;
using Spectre.Console;

namespace LaneQueue.Cli;

/// <summary><c>task watch --id X</c>: a task's events as they happen (a progress bar on a terminal), then its result.</summary>
static class TaskWatchCli
{
    public static Command Watch()
    {
        var id = new Option<string>("--id") { Description = "Task id", Required = true };
        var timeout = new Option<double>("--timeout") { Description = "Seconds to wait for the task to end", DefaultValueFactory = _ => 3600 };
        var since = new Option<double?>("--since-hours") { Description = "How far back to read the history for what happened before (hours; default: all of it)" };
        var command = new Command("watch",
            "Follow a task: its events and progress reports as they come (a progress bar on a terminal; lines otherwise; --json: one event per line), then its result")
            { id, timeout, since };
        command.SetAction((parse, ct) => CliRun.WithProducerAsync(parse, ct, async (producer, output) =>
        {
            var taskId = parse.GetValue(id)!;
            var seconds = parse.GetValue(timeout);
            var lookBack = parse.GetValue(since) is { } hours ? TimeSpan.FromHours(hours) : (TimeSpan?)null;
            var json = parse.GetValue(ProducerCli.Json);
            ExternalTaskResult result;
            try
            {
                result = !json && CliProgress.IsTerminal(output)
                    ? await WithBarAsync(producer, taskId, TimeSpan.FromSeconds(seconds), lookBack, ct)
                    : await producer.WatchTaskAsync(taskId, e => output.WriteLineAsync(json ? JsonSerializer.Serialize(e, TaskJson.Options) : Line(e)),
                        TimeSpan.FromSeconds(seconds), lookBack, ct);
            }
            catch (TimeoutException)
            {
                throw new TimeoutException($"task '{taskId}' did not end within {seconds} s (--timeout); it may not be submitted yet, or still run");
            }
            await output.WriteLineAsync(json
                ? JsonSerializer.Serialize(result, TaskJson.Options)
                : $"{result.TaskId}: {result.Status} on {result.Consumer} after {result.Attempts} attempt(s){(result.Error is null ? "" : ": " + result.Error)}");
            return result.Success ? ProducerCli.Ok : ProducerCli.TaskFailed;
        }));
        return command;
    }

    /// <summary>One event as a line: time, event, attempt, consumer, and the progress or error it carries.</summary>
    public static string Line(TaskEvent e) =>
        $"{e.At:HH:mm:ss.fff}  {e.Event.Replace("command.", "", StringComparison.Ordinal),-16} attempt {e.Attempt} on {e.Consumer}{Detail(e)}";

    static string Detail(TaskEvent e) => e switch
    {
        { ProgressValue: { } progress } => "  " + Shown(progress),
        { Error: { } error } => ": " + error,
        { DelayMs: { } delay } => $": retry in {delay} ms",
        _ => "",
    };

    /// <summary>A progress report as text: <c>40% slept 400 of 1000 ms</c> for the percent form, its JSON otherwise.</summary>
    public static string Shown(JsonElement progress) => Percent(progress) is { } percent
        ? $"{percent:0.#}%{(Message(progress) is { } message ? " " + message : "")}"
        : progress.GetRawText();

    static double? Percent(JsonElement progress) =>
        progress.ValueKind == JsonValueKind.Object && progress.TryGetProperty("percent", out var p) && p.TryGetDouble(out var value) ? value : null;

    static string? Message(JsonElement progress) =>
        progress.ValueKind == JsonValueKind.Object && progress.TryGetProperty("message", out var m) && m.ValueKind == JsonValueKind.String ? m.GetString() : null;

    /// <summary>On a terminal: a live bar (Spectre.Console) moved by the percent reports, its label by the other events.</summary>
    static async Task<ExternalTaskResult> WithBarAsync(ILaneQueueProducer producer, string taskId, TimeSpan timeout, TimeSpan? lookBack, CancellationToken ct)
    {
        ExternalTaskResult? result = null;
        await AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Out) })
            .Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new SpinnerColumn())
            .StartAsync(async context =>
            {
                var bar = context.AddTask(Markup.Escape($"{taskId}: waiting"), maxValue: 100);
                result = await producer.WatchTaskAsync(taskId, e =>
                {
                    if (Percent(e.ProgressValue ?? default) is { } percent)
                        bar.Value = Math.Clamp(percent, 0, 100);
                    var what = e.ProgressValue is { } progress ? Message(progress) ?? "running" : e.Event.Replace("command.", "", StringComparison.Ordinal);
                    bar.Description = Markup.Escape($"{taskId}: {what}");
                    return Task.CompletedTask;
                }, timeout, lookBack, ct);
                if (result.Success)
                    bar.Value = 100;
                bar.StopTask();
            });
        return result!;
    }
}
