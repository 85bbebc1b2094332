using System.Collections.Concurrent;
using System.Text.Json;
using LaneQueue.Consumer;
using LaneQueue.Contracts;

namespace LaneQueue.Tests.Broker;

/// <summary>
/// A handler (command type <c>record</c>) that notes when and where each task starts and finishes, in one
/// sequence over the whole fleet of in-process consumers, then sleeps <c>payload.ms</c>.
/// </summary>
public sealed class StartLog
{
    public const string CommandType = "record";

    long _sequence;

    public sealed record Entry(string Id, SessionLane Lane, long Sequence, DateTimeOffset At, string Consumer);

    public ConcurrentQueue<Entry> Starts { get; } = new();

    public ConcurrentQueue<string> Finished { get; } = new();

    public async Task<object?> HandleAsync(TaskContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        Starts.Enqueue(new Entry(context.Task.Id, context.Task.Lane, Interlocked.Increment(ref _sequence), DateTimeOffset.UtcNow, context.ConsumerName));
        var payload = context.Task.Payload;
        var ms = payload.ValueKind == JsonValueKind.Object && payload.TryGetProperty("ms", out var value) ? value.GetInt32() : 0;
        if (ms > 0)
            await Task.Delay(ms, context.CancellationToken);
        Finished.Enqueue(context.Task.Id);
        return null;
    }

    public Entry? StartOf(string id) => Starts.FirstOrDefault(s => s.Id == id);

    public int StartedIn(SessionLane lane) => Starts.Count(s => s.Lane == lane);

    public static ExternalTask Make(string id, SessionLane lane, int ms) => ExternalTask.Create(id, lane, new { ms }, CommandType);
}
