using System.Text.Json.Serialization;
using LaneQueue.Consumer;

namespace LaneQueue.Sample;

/// <summary>The payload of an <c>analysis</c> task: <c>{"prompt": "...", "work_ms": 300}</c>.</summary>
public sealed record AnalysisRequest(
    [property: JsonPropertyName("prompt")] string Prompt,
    [property: JsonPropertyName("work_ms")] int WorkMs = 300);

/// <summary>
/// Runs tasks with <c>command_type</c> <c>analysis</c>. LaneQueue reads the payload into an <see cref="AnalysisRequest"/>;
/// what the handler returns becomes the task's result JSON.
/// </summary>
public sealed class AnalysisHandler(ILogger<AnalysisHandler> log) : ITaskHandler<AnalysisRequest>
{
    public async Task<object?> HandleAsync(AnalysisRequest payload, TaskContext context)
    {
        log.LogInformation("task {TaskId}: analysing '{Prompt}'", context.Task.Id, payload.Prompt);
        // Stands in for the real work. The token fires on the task's timeout, on cancellation and at shutdown.
        await Task.Delay(payload.WorkMs, context.CancellationToken);
        return new { summary = $"analysed: {payload.Prompt}", words = payload.Prompt.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length };
    }
}
