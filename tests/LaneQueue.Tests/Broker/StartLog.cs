using System.Collections.Concurrent;
using System.Text.Json;
using LaneQueue.Consumer;
using LaneQueue.Contracts;

namespace LaneQueue.Tests.Broker;

/// <summary>
/// A handler (command type <c>record</c>) that notes when and where each task starts and finishes, in one
/// sequence over the whole fleet of in-process consumers, then sleeps <c>payload.ms</c>. Each start also notes how many
/// tasks of each lane were running on its consumer just then (<see cref="Entry.RunningHere"/>).
/// </summary>
public sealed class StartLog
{
    public const string CommandType = "record";

    readonly Dictionary<string, int[]> _running = [];
    long _sequence;

    /// <param name="RunningHere">Tasks of each lane (by lane priority) running on <paramref name="Consumer"/> when this one started.</param>
    public sealed record Entry(string Id, SessionLane Lane, long Sequence, DateTimeOffset At, string Consumer, int[] RunningHere);

    public sealed record End(string Id, SessionLane Lane, DateTimeOffset At, string Consumer);

    public ConcurrentQueue<Entry> Starts { get; } = new();

    public ConcurrentQueue<string> Finished { get; } = new();

    public ConcurrentQueue<End> Ends { get; } = new();

    public async Task<object?> HandleAsync(TaskContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        lock (_running)
        {
            var here = _running.TryGetValue(context.ConsumerName, out var counts) ? counts : _running[context.ConsumerName] = new int[SessionLanes.All.Count];
            // At: when the consumer gave the task its slot (TaskContext.StartedAt), not when the handler got to run.
            Starts.Enqueue(new Entry(context.Task.Id, context.Task.Lane, Interlocked.Increment(ref _sequence), context.StartedAt, context.ConsumerName, (int[])here.Clone()));
            here[(int)context.Task.Lane]++;
        }
        try
        {
            var payload = context.Task.Payload;
            var ms = payload.ValueKind == JsonValueKind.Object && payload.TryGetProperty("ms", out var value) ? value.GetInt32() : 0;
            if (ms > 0)
                await Task.Delay(ms, context.CancellationToken);
        }
        finally
        {
            lock (_running)
            {
                _running[context.ConsumerName][(int)context.Task.Lane]--;
                Ends.Enqueue(new End(context.Task.Id, context.Task.Lane, DateTimeOffset.UtcNow, context.ConsumerName));
            }
        }
        Finished.Enqueue(context.Task.Id);
        return null;
    }

    public Entry? StartOf(string id) => Starts.FirstOrDefault(s => s.Id == id);

    public int StartedIn(SessionLane lane) => Starts.Count(s => s.Lane == lane);

    /// <summary>Tasks of <paramref name="lane"/> that held a slot of <paramref name="consumer"/> at <paramref name="at"/> (given it, not ended).</summary>
    public int RunningAt(string consumer, SessionLane lane, DateTimeOffset at)
    {
        var ended = Ends.Where(e => e.Consumer == consumer && e.Lane == lane).GroupBy(e => e.Id).ToDictionary(g => g.Key, g => g.Max(e => e.At));
        return Starts.Count(s => s.Consumer == consumer && s.Lane == lane && s.At < at && (!ended.TryGetValue(s.Id, out var end) || end > at));
    }

    /// <summary>
    /// Slot time the handlers of <paramref name="consumer"/> used between <paramref name="from"/> and <paramref name="to"/>,
    /// as a share of <paramref name="slots"/> slots over that time (1 = every slot busy all the time).
    /// </summary>
    public double Utilization(string consumer, DateTimeOffset from, DateTimeOffset to, int slots)
    {
        var ends = Ends.Where(e => e.Consumer == consumer).GroupBy(e => e.Id).ToDictionary(g => g.Key, g => g.Max(e => e.At));
        var busy = 0.0;
        foreach (var start in Starts.Where(s => s.Consumer == consumer))
        {
            var began = start.At > from ? start.At : from;
            var ended = ends.TryGetValue(start.Id, out var at) && at < to ? at : to;
            busy += Math.Max(0, (ended - began).TotalMilliseconds);
        }
        return busy / ((to - from).TotalMilliseconds * slots);
    }

    public static ExternalTask Make(string id, SessionLane lane, int ms) => ExternalTask.Create(id, lane, new { ms }, CommandType);
}
