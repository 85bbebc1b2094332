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
/// any-language users and the demo see progress without writing a handler.
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
        if (ms < ProgressFromMs)
        {
            await Task.Delay(ms, context.CancellationToken);
            return new { slept_ms = ms };
        }
        var steps = (int)Math.Min(100, ms / 100);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (var step = 1; step <= steps; step++)
        {
            var until = (long)ms * step / steps;
            var wait = until - clock.ElapsedMilliseconds;
            if (wait > 0)
                await Task.Delay(TimeSpan.FromMilliseconds(wait), context.CancellationToken);
            await context.ReportProgressAsync(100.0 * step / steps, $"slept {until} of {ms} ms");
        }
        return new { slept_ms = ms };
    }

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
