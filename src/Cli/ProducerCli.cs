using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using LaneQueue.Contracts;

using LaneQueue.Producer;

namespace LaneQueue.Cli;

/// <summary>
/// The <c>lanequeue</c> command line: <c>submit</c>, <c>wait</c>, <c>stats</c>, <c>pause</c>, <c>resume</c>, <c>cancel</c>,
/// <c>dead-letters list|redrive|purge</c>, <c>drain</c>, <c>handler set</c>. Human output by default, <c>--json</c> for scripts.
/// Exit codes: 0 done, 2 invalid task or arguments, 3 broker refused or unreachable, 4 no result in time, 5 task failed.
/// </summary>
public static class ProducerCli
{
    public const int Ok = 0, InvalidInput = 2, Rejected = 3, TimedOut = 4, TaskFailed = 5;

    /// <summary>The broker URL, for every command.</summary>
    public static readonly Option<string> Url = new("--url")
    {
        Description = $"Broker URL (default: ${BrokerConnection.UrlVariable} or {BrokerConnection.DefaultUrl})",
        DefaultValueFactory = _ => BrokerConnection.UrlFromEnvironment(),
        Recursive = true,
    };

    /// <summary>Machine-readable output, for every command.</summary>
    public static readonly Option<bool> Json = new("--json") { Description = "Print JSON instead of text", Recursive = true };

    public static RootCommand Build()
    {
        var lane = new Option<string>("--lane") { Description = $"Lane: {SessionLanes.NamesList}", Required = true };
        var id = new Option<string?>("--id") { Description = "Task id (default: a new GUID); with --count, the prefix of the ids" };
        var payload = new Option<string>("--payload") { Description = "Payload as JSON", DefaultValueFactory = _ => "{}" };
        var commandType = new Option<string?>("--command-type") { Description = "Handler to run (e.g. sleep, echo)" };
        var session = new Option<string?>("--session") { Description = "Session id" };
        var timeoutMs = new Option<long?>("--timeout-ms") { Description = "Task timeout in milliseconds" };
        var count = new Option<int>("--count") { Description = "Submit this many tasks (ids <id>-1..<id>-N)", DefaultValueFactory = _ => 1 };
        var wait = new Option<double?>("--wait") { Description = "Wait up to this many seconds for the result and print it" };
        var quiet = new Option<bool>("--quiet") { Description = "Print nothing but errors" };
        var delay = new Option<string?>("--delay") { Description = "Delayed task: start no earlier than this after the submit (e.g. 500ms, 30s, 5m, 2h; at most 20h)" };
        var at = new Option<string?>("--at") { Description = "Delayed task: start no earlier than this RFC 3339 time with a zone (e.g. 2026-01-31T12:00:00Z)" };
        var dedupKey = new Option<string?>("--dedup-key") { Description = "De-duplication key: of the tasks with it, the first runs; the others within the window are answered duplicate" };
        var dedupWindow = new Option<string?>("--dedup-window") { Description = "How long --dedup-key holds (e.g. 500ms, 30s, 5m, 2h; at most 24h; default 60s)" };
        var debounce = new Option<bool>("--debounce") { Description = "With --dedup-key: the last task with the key runs, earlier ones still waiting are answered duplicate (dedup_mode debounce; give a --delay, and a --dedup-window of at least the delay)" };

        var submit = new Command("submit", "Submit tasks to a lane; returns once the broker has stored them")
        {
            lane, id, payload, commandType, session, timeoutMs, count, wait, quiet, delay, at, dedupKey, dedupWindow, debounce,
        };
        submit.SetAction(async (parse, cancellationToken) =>
        {
            var output = parse.InvocationConfiguration.Output;
            var errors = parse.InvocationConfiguration.Error;
            if (!SessionLanes.TryParse(parse.GetValue(lane), out var parsedLane))
            {
                await errors.WriteLineAsync($"error: --lane '{parse.GetValue(lane)}' is not a lane; expected one of {SessionLanes.NamesList}");
                return InvalidInput;
            }
            JsonElement body;
            try
            {
                body = TaskJson.ParseElement(parse.GetValue(payload)!);
            }
            catch (JsonException ex)
            {
                await errors.WriteLineAsync($"error: --payload is not valid JSON: {ex.Message}");
                return InvalidInput;
            }
            var n = parse.GetValue(count);
            if (n < 1)
            {
                await errors.WriteLineAsync("error: --count must be at least 1");
                return InvalidInput;
            }
            var delayed = DelayOptions(parse.GetValue(delay), parse.GetValue(at));
            if (delayed.Problem is { } delayProblem)
            {
                await errors.WriteLineAsync($"error: {delayProblem}");
                return InvalidInput;
            }
            long? windowMs = null;
            if (parse.GetValue(dedupWindow) is { } windowText)
            {
                windowMs = DurationMs(windowText);
                var problem = windowMs is null ? $"--dedup-window '{windowText}' must be a whole number and a unit (ms, s, m or h), such as 500ms, 30s, 5m or 2h"
                    : parse.GetValue(dedupKey) is null ? "--dedup-window needs --dedup-key"
                    : windowMs is < 1 or > TaskParser.MaxDedupWindowMs ? $"--dedup-window '{windowText}' must be from 1 ms to 24 hours"
                    : null;
                if (problem is not null)
                {
                    await errors.WriteLineAsync($"error: {problem}");
                    return InvalidInput;
                }
            }
            if (parse.GetValue(debounce) && parse.GetValue(dedupKey) is null)
            {
                await errors.WriteLineAsync("error: --debounce needs --dedup-key");
                return InvalidInput;
            }
            var baseId = parse.GetValue(id) ?? Guid.NewGuid().ToString("N");
            var tasks = Enumerable.Range(1, n).Select(i => new ExternalTask
            {
                Id = n == 1 ? baseId : $"{baseId}-{i}",
                Lane = parsedLane.Value,
                Payload = body,
                CommandType = parse.GetValue(commandType),
                SessionId = parse.GetValue(session),
                TimeoutMs = parse.GetValue(timeoutMs),
                DelayMs = delayed.DelayMs,
                NotBefore = delayed.NotBefore,
                DedupKey = parse.GetValue(dedupKey),
                DedupWindowMs = windowMs,
                DedupMode = parse.GetValue(debounce) ? TaskParser.DedupDebounce : null,
            }).ToList();

            try
            {
                await using var producer = await LaneQueueProducer.ConnectAsync(CliProducerOptions.From(parse), cancellationToken);
                var waitSeconds = parse.GetValue(wait);
                if (waitSeconds is { } seconds)
                {
                    if (n != 1)
                    {
                        await errors.WriteLineAsync("error: --wait works with a single task (--count 1)");
                        return InvalidInput;
                    }
                    // Listen first (so the result is not missed), then stamp and publish: the reply queue's set-up is not the task's wait.
                    var watch = await producer.WatchResultAsync(tasks[0].Id, cancellationToken);
                    await producer.SubmitTaskAsync(AtPublish(tasks[0]), cancellationToken);
                    ExternalTaskResult result;
                    try
                    {
                        result = await watch.WaitAsync(TimeSpan.FromSeconds(seconds), cancellationToken);
                    }
                    catch (TimeoutException)
                    {
                        throw new TimeoutException(
                            $"no result for task '{tasks[0].Id}' within {seconds:0.#} s. It is stored in lane '{tasks[0].Lane.WireName()}' " +
                            "and may still run: is a consumer running, or is the lane paused?");
                    }
                    await output.WriteLineAsync(JsonSerializer.Serialize(result, TaskJson.Options));
                    return result.Success ? Ok : TaskFailed;
                }
                await SubmitAllAsync(producer, tasks, parse.GetValue(quiet) || parse.GetValue(Json) ? null : output, cancellationToken);
                if (parse.GetValue(Json))
                    await output.WriteLineAsync(JsonSerializer.Serialize(new { submitted = tasks.Count, lane = parsedLane.Value.WireName(), ids = tasks.Select(t => t.Id) }));
                return Ok;
            }
            catch (InvalidTaskException ex)
            {
                await errors.WriteLineAsync($"error: invalid task: {ex.Message}");
                return InvalidInput;
            }
            catch (ArgumentException ex)
            {
                await errors.WriteLineAsync($"error: {ex.Message}");
                return InvalidInput;
            }
            catch (TaskRejectedException ex)
            {
                await errors.WriteLineAsync($"error: {ex.Message}");
                return Rejected;
            }
            catch (TimeoutException ex)
            {
                await errors.WriteLineAsync($"error: {ex.Message}");
                return TimedOut;
            }
        });

        var root = new RootCommand("lanequeue: submit tasks to the priority lanes and operate the consumer fleet") { submit, Url, Json };
        FleetCli.AddTo(root);
        DeadLetterCli.AddTo(root);
        DashboardCli.AddTo(root);
        ExternalCli.AddTo(root);
        ScheduleCli.AddTo(root);
        return root;
    }

    /// <summary>
    /// Parses and runs a command line. Input the parser refuses (a required option missing, an unknown option or command, a
    /// value of the wrong type) is an invalid argument like any other: an <c>error: ...</c> line per problem, a pointer to the
    /// command's help, and exit code <see cref="InvalidInput"/> (System.CommandLine's own answer exits 1 with the whole help).
    /// </summary>
    public static Task<int> RunAsync(string[] args, InvocationConfiguration? configuration = null)
    {
        var parse = Build().Parse(args);
        if (parse.Errors.Count == 0)
            return parse.InvokeAsync(configuration);
        var errors = configuration?.Error ?? Console.Error;
        foreach (var error in parse.Errors)
            errors.WriteLine($"error: {Plain(error.Message)}");
        List<string> names = [];
        for (var result = parse.CommandResult; result.Parent is System.CommandLine.Parsing.CommandResult parent; result = parent)
            names.Insert(0, result.Command.Name);
        errors.WriteLine($"see: lanequeue {string.Join(' ', [.. names, "--help"])}");
        return Task.FromResult(InvalidInput);
    }

    /// <summary>A parse error without .NET type names: "expected type 'System.Nullable`1[System.Int64]'" says "expected a whole number".</summary>
    static string Plain(string message) =>
        System.Text.RegularExpressions.Regex.Replace(message, @" as expected type '([^']+)'\.?", match =>
        {
            var type = match.Groups[1].Value;
            var expected = type.Contains("Int", StringComparison.Ordinal) ? "a whole number"
                : type.Contains("Double", StringComparison.Ordinal) || type.Contains("Decimal", StringComparison.Ordinal) ? "a number"
                : type.Contains("Boolean", StringComparison.Ordinal) ? "true or false"
                : type;
            return $": expected {expected}.";
        });

    /// <summary>
    /// Reads <c>--delay</c> (a whole number and a unit: <c>ms</c>, <c>s</c>, <c>m</c> or <c>h</c>, e.g. <c>30s</c>) and <c>--at</c>
    /// (RFC 3339 with a zone, as the wire's <c>not_before</c>); at most one of them. A problem names the option.
    /// </summary>
    internal static (long? DelayMs, DateTimeOffset? NotBefore, string? Problem) DelayOptions(string? delay, string? at)
    {
        if (delay is not null && at is not null)
            return (null, null, "--delay and --at are both given; use one (--delay: a wait from the submit, --at: a time)");
        if (at is not null)
            return TaskParser.TryParseTimestamp(at, out var time)
                ? (null, time, null)
                : (null, null, $"--at '{at}' must be an RFC 3339 time with a zone, such as 2026-01-31T12:00:00Z or 2026-01-31T13:00:00.5+01:00");
        if (delay is null)
            return (null, null, null);
        if (DurationMs(delay) is not { } ms)
            return (null, null, $"--delay '{delay}' must be a whole number and a unit (ms, s, m or h), such as 500ms, 30s, 5m or 2h");
        return ms > TaskParser.MaxDelayMs
            ? (null, null, $"--delay '{delay}' is over the limit of {TaskParser.MaxDelayMs / 3_600_000} hours")
            : (ms, null, null);
    }

    /// <summary>A duration option (<c>--delay</c>, <c>--dedup-window</c>): a whole number and a unit (ms, s, m, h); null when it is not one.</summary>
    internal static long? DurationMs(string text)
    {
        var match = System.Text.RegularExpressions.Regex.Match(text.Trim(), @"^([0-9]{1,12})(ms|s|m|h)\z");
        if (!match.Success)
            return null;
        return long.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) * match.Groups[2].Value switch
        {
            "ms" => 1L,
            "s" => 1000L,
            "m" => 60_000L,
            _ => 3_600_000L,
        };
    }

    /// <summary>
    /// The task with <c>created_at</c> = now, taken as it is handed to the producer to publish. The tasks are built before
    /// the CLI connects: stamped there, a task's wait (the consumer's <c>started_at - created_at</c>, in its log line and
    /// wait-time metric) counted the CLI's connect and set-up as time spent waiting in the lane.
    /// </summary>
    internal static ExternalTask AtPublish(ExternalTask task) => task with { CreatedAt = DateTimeOffset.UtcNow };

    static async Task SubmitAllAsync(LaneQueueProducer producer, List<ExternalTask> tasks, TextWriter? progress, CancellationToken cancellationToken)
    {
        if (progress is not null && tasks.Count > 1 && CliProgress.IsTerminal(progress))
        {
            // A live progress bar on a terminal; plain "submitted n/N" lines otherwise (logs, pipes, tests).
            await CliProgress.RunAsync($"submitting to lane {tasks[0].Lane.WireName()}", tasks.Count, async advance =>
            {
                foreach (var chunk in tasks.Chunk(64))
                {
                    await Task.WhenAll(chunk.Select(task => producer.SubmitTaskAsync(AtPublish(task), cancellationToken)));
                    advance(chunk.Length);
                }
            });
            await progress.WriteLineAsync($"submitted {tasks.Count} tasks to lane {tasks[0].Lane.WireName()}");
            return;
        }
        var clock = Stopwatch.StartNew();
        var done = 0;
        foreach (var chunk in tasks.Chunk(64))
        {
            await Task.WhenAll(chunk.Select(task => producer.SubmitTaskAsync(AtPublish(task), cancellationToken)));
            done += chunk.Length;
            if (progress is not null && tasks.Count > 1 && (done == tasks.Count || clock.ElapsedMilliseconds > 500 && done % 512 == 0))
                await progress.WriteLineAsync($"submitted {done}/{tasks.Count}");
        }
        if (progress is not null)
            await progress.WriteLineAsync(tasks.Count == 1
                ? $"submitted {tasks[0].Id} to lane {tasks[0].Lane.WireName()}"
                : $"submitted {tasks.Count} tasks to lane {tasks[0].Lane.WireName()} in {clock.Elapsed.TotalSeconds:0.0} s");
    }
}
