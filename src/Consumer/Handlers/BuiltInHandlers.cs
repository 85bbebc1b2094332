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

/// <summary><c>sleep</c>: waits <c>payload.ms</c> milliseconds (an I/O-bound stand-in), honouring cancellation.</summary>
internal sealed class SleepHandler : ITaskHandler
{
    public const string CommandType = "sleep";

    public async Task<object?> HandleAsync(TaskContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var payload = context.Task.Payload;
        var ms = payload.ValueKind == JsonValueKind.Object && payload.TryGetProperty("ms", out var value) && value.TryGetInt32(out var n) ? n : 0;
        await Task.Delay(ms, context.CancellationToken);
        return new { slept_ms = ms };
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
