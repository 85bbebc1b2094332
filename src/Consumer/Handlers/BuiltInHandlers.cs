using LaneQueue.Contracts;
using System.Text.Json;

namespace LaneQueue.Consumer;

/// <summary><c>echo</c> (also the default): returns the payload.</summary>
internal sealed class EchoHandler : ITaskHandler
{
    public const string CommandType = "echo";

    public Task<object?> HandleAsync(TaskContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return Task.FromResult<object?>(context.Task.Payload);
    }
}

/// <summary>
/// <c>sleep</c>: waits <c>payload.ms</c> milliseconds (an I/O-bound stand-in), honouring cancellation; no <c>ms</c> (or a
/// payload that is not an object) sleeps 0. An <c>ms</c> that is not a whole number from 0 to 2147483647 can never work: it
/// is refused with <see cref="PermanentTaskException"/>, not retried. A sleep of <see cref="ProgressFromMs"/> or more reports
/// its progress in up to 100 steps of at least 100 ms (<c>{"percent": 40, "message": "slept 400 of 1000 ms"}</c>), so
/// any-language users and the demo see progress without writing a handler. A preemptible sleep yields when asked, with the
/// checkpoint <c>{"slept_ms": n}</c>, and resumes from it: the result then says <c>resumed_from_ms</c>.
/// </summary>
internal sealed class SleepHandler : ITaskHandler
{
    public const string CommandType = "sleep";

    /// <summary>The shortest sleep that reports progress (shorter ones, like the benchmarks' 20 ms tasks, report none).</summary>
    public const int ProgressFromMs = 500;

    public async Task<object?> HandleAsync(TaskContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var ms = Milliseconds(context.Task.Payload);
        var before = SleptBefore(context.Checkpoint, ms);
        var yieldRequested = context.Task.Preemptible ? context.YieldRequested : CancellationToken.None;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, yieldRequested);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            if (ms < ProgressFromMs)
                await Task.Delay(TimeSpan.FromMilliseconds(ms - before), stop.Token);
            else
            {
                var steps = (int)Math.Min(100, ms / 100);
                for (var step = 1; step <= steps; step++)
                {
                    var until = (long)ms * step / steps;
                    if (until <= before)
                        continue;
                    var wait = until - before - clock.ElapsedMilliseconds;
                    if (wait > 0)
                        await Task.Delay(TimeSpan.FromMilliseconds(wait), stop.Token);
                    await context.ReportProgressAsync(100.0 * step / steps, $"slept {until} of {ms} ms");
                }
            }
        }
        catch (OperationCanceledException) when (yieldRequested.IsCancellationRequested && !context.CancellationToken.IsCancellationRequested)
        {
            return TaskContext.Yield(new { slept_ms = Math.Min(ms, before + clock.ElapsedMilliseconds) });
        }
        return before == 0 ? new { slept_ms = ms } : (object)new { slept_ms = ms, resumed_from_ms = before };
    }

    /// <summary>How much of the sleep a checkpoint says is done (0 without one, or with one that is not ours).</summary>
    static long SleptBefore(JsonElement? checkpoint, int ms) =>
        checkpoint is { ValueKind: JsonValueKind.Object } c && c.TryGetProperty("slept_ms", out var slept) && slept.TryGetInt64(out var done)
            ? Math.Clamp(done, 0, ms)
            : 0;

    static int Milliseconds(JsonElement payload)
    {
        if (payload.ValueKind != JsonValueKind.Object || !payload.TryGetProperty("ms", out var value) || value.ValueKind == JsonValueKind.Null)
            return 0;
        return value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out var ms) && ms >= 0
            ? ms
            : throw new PermanentTaskException("payload", $"ms must be a whole number of milliseconds from 0 to {int.MaxValue}, got {Shown(value)}");
    }

    static string Shown(JsonElement value)
    {
        var text = value.GetRawText();
        return text.Length <= 40 ? text : text[..40] + "…";
    }
}

/// <summary>
/// <c>lanequeue.interrupt</c> (always registered, like <c>echo</c>): interrupts a session from inside the queue, for any-language
/// producers: payload <c>{"session_id": "s-1"}</c> asks every running task of the session, on any consumer, to yield;
/// <c>"cancel": true</c> cancels them. Submit it on the <c>control</c> lane so it runs before the work it interrupts.
/// Publishes the fleet command (confirmed) and returns <c>{"interrupted": "s-1", "mode": "yield"}</c>.
/// </summary>
internal sealed class InterruptSessionHandler(IFleetCommands fleet, Microsoft.Extensions.Options.IOptions<LaneQueueOptions> options) : ITaskHandler
{
    public const string CommandType = "lanequeue.interrupt";

    public async Task<object?> HandleAsync(TaskContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (!options.Value.InterruptTasks)
            throw new PermanentTaskException("command_type", $"{CommandType} tasks are turned off on consumer {context.ConsumerName} (LaneQueue:InterruptTasks=false)");
        var payload = context.Task.Payload;
        if (payload.ValueKind != JsonValueKind.Object || !payload.TryGetProperty("session_id", out var session)
            || session.ValueKind != JsonValueKind.String || string.IsNullOrWhiteSpace(session.GetString()))
            throw new PermanentTaskException("payload", "session_id must be the session to interrupt, a non-empty string");
        var cancel = false;
        if (payload.TryGetProperty("cancel", out var flag) && flag.ValueKind != JsonValueKind.Null)
            cancel = flag.ValueKind is JsonValueKind.True or JsonValueKind.False
                ? flag.GetBoolean()
                : throw new PermanentTaskException("payload", $"cancel must be true or false, got {flag.GetRawText()}");
        var command = FleetCommands.Interrupt(session.GetString()!, cancel);
        await fleet.SendAsync(command, context.CancellationToken);
        return new { interrupted = command.SessionId, mode = command.Mode };
    }
}

/// <summary>Sends a fleet command to every consumer (the consumer's <see cref="BrokerPublisher"/>, or the test harness).</summary>
internal interface IFleetCommands
{
    Task SendAsync(FleetCommand command, CancellationToken cancellationToken);
}

/// <summary><c>fail</c>: always throws, with <c>payload.message</c> as the error.</summary>
internal sealed class FailHandler : ITaskHandler
{
    public const string CommandType = "fail";

    public Task<object?> HandleAsync(TaskContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var payload = context.Task.Payload;
        var message = payload.ValueKind == JsonValueKind.Object && payload.TryGetProperty("message", out var m) && m.ValueKind == JsonValueKind.String
            ? m.GetString()
            : "the fail handler always fails";
        throw new InvalidOperationException(message);
    }
}

/// <summary>Adapts a delegate to <see cref="ITaskHandler"/>.</summary>
internal sealed class DelegateHandler(Func<TaskContext, Task<object?>> handle) : ITaskHandler
{
    public Task<object?> HandleAsync(TaskContext context) => handle(context);
}
