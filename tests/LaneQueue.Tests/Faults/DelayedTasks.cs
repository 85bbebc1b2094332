using System.Collections.Concurrent;
using System.Globalization;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using LaneQueue.Contracts;
using LaneQueue.Producer;
using LaneQueue.Tests.Broker;

namespace LaneQueue.Tests.Faults;

/// <summary>
/// What the delayed-task fault tests (<see cref="DelayedMemoryTests"/>, <see cref="DelayedBrokerRestartTests"/>,
/// <see cref="DelayedConsumerKillTests"/>) share: delayed <c>sleep</c> tasks submitted both ways (the .NET producer, straight
/// into the delay tree; raw AMQP to the lane, as another language's client sends them, so a consumer parks each one in the
/// tree), the due time of each, where the broker holds them (management API), and which ones started before they were due.
/// </summary>
public sealed class DelayedTasks
{
    readonly ConcurrentDictionary<string, DateTimeOffset> _due = new(StringComparer.Ordinal);

    /// <summary>
    /// When each submitted task is due, at the earliest: the moment its submit was called plus its delay (.NET producer, which
    /// counts the delay from its publish, a moment later), or its <c>created_at</c> plus <c>delay_ms</c> (raw: the consumer's rule).
    /// </summary>
    public IReadOnlyDictionary<string, DateTimeOffset> Due => _due;

    /// <summary>A raw task as another language's client publishes it: JSON with <c>delay_ms</c> and <c>created_at</c>.</summary>
    public static byte[] RawBody(string id, SessionLane lane, TimeSpan delay, DateTimeOffset createdAt)
    {
        var delayMs = delay > TimeSpan.Zero ? string.Create(CultureInfo.InvariantCulture, $",\"delay_ms\":{(long)delay.TotalMilliseconds}") : "";
        return Encoding.UTF8.GetBytes(string.Create(CultureInfo.InvariantCulture,
            $$"""{"id":"{{id}}","lane":"{{lane.WireName()}}","command_type":"sleep","payload":{"ms":0}{{delayMs}},"created_at":"{{createdAt.UtcDateTime:yyyy-MM-dd'T'HH:mm:ss.fff'Z'}}"}"""));
    }

    /// <summary>
    /// Publishes raw tasks to <c>lanequeue.tasks</c> with the lane as routing key, <paramref name="parallel"/> confirms in
    /// flight at a time; each is recorded as accepted in <paramref name="tally"/> once confirmed.
    /// </summary>
    public async Task PublishRawAsync(RawClient raw, ResultTally tally, IEnumerable<(string Id, SessionLane Lane, TimeSpan Delay)> tasks, int parallel = 200)
    {
        foreach (var chunk in tasks.Chunk(parallel))
        {
            await Task.WhenAll(chunk.Select(async t =>
            {
                var created = DateTimeOffset.UtcNow;
                _due[t.Id] = created + t.Delay;
                await raw.PublishAsync(BrokerNames.RoutingKey(t.Lane), RawBody(t.Id, t.Lane, t.Delay, created));
                tally.Accepted(t.Id);
            }));
        }
    }

    /// <summary>Submits <c>sleep</c> tasks through the .NET producer (into the delay tree), <paramref name="parallel"/> at a time.</summary>
    public async Task SubmitAsync(LaneQueueProducer producer, ResultTally tally, IEnumerable<(string Id, SessionLane Lane, TimeSpan Delay)> tasks, int parallel = 200)
    {
        foreach (var chunk in tasks.Chunk(parallel))
        {
            await Task.WhenAll(chunk.Select(async t =>
            {
                _due[t.Id] = DateTimeOffset.UtcNow + t.Delay;
                await producer.SubmitTaskAsync(ExternalTask.Create(t.Id, t.Lane, new { ms = 0 }, "sleep").After(t.Delay));
                tally.Accepted(t.Id);
            }));
        }
    }

    /// <summary>Tasks with a completed result that started before they were due (by the consumers' clock, this machine's).</summary>
    public IReadOnlyList<string> StartedEarly(ResultTally tally) =>
        [.. _due.Where(d => tally.ResultsOf(d.Key).Any(r => r.Status == TaskStatuses.Completed && r.StartedAt < d.Value))
            .Select(d => $"{d.Key} (due {d.Value:HH:mm:ss.fff}, started {tally.ResultsOf(d.Key).Min(r => r.StartedAt):HH:mm:ss.fff})")];

    /// <summary>Tasks that ran more than once: two distinct completed runs, or two <c>command.started</c> events.</summary>
    public IReadOnlyList<string> RanTwice(ResultTally tally) =>
        [.. _due.Keys.Where(id => tally.ResultsOf(id).Where(r => r.Status == TaskStatuses.Completed).Select(r => (r.Consumer, r.StartedAt)).Distinct().Count() > 1
                                 || tally.StartsOf(id).Count > 1).Order(StringComparer.Ordinal)];

    /// <summary>Each of <paramref name="ids"/> with its runs (consumer and start), for reports.</summary>
    public static string Runs(ResultTally tally, IEnumerable<string> ids, int max = 10) => string.Join("; ", ids.Take(max).Select(id =>
        $"{id}: {string.Join(", ", tally.ResultsOf(id).Select(r => $"{r.Status} on {r.Consumer} at {r.StartedAt:HH:mm:ss.fff}"))}"));

    static readonly string TreePrefix = BrokerNames.DelayLevel(0)[..^2]; // "lanequeue.delay."

    /// <summary>Where a vhost's messages are: in the delay tree's hop queues, and in the lane queues (management API).</summary>
    public sealed record Holding(long InDelayTree, long InLanes)
    {
        public override string ToString() => $"in the delay tree {InDelayTree}, in the lane queues {InLanes}";
    }

    /// <summary>
    /// Reads the message counts of the delay tree's and the lanes' queues: from the node's management API (its numbers are
    /// refreshed every 5 s), or with <paramref name="live"/> the queues' own counts now: <c>rabbitmqctl list_queues</c> for the
    /// lanes, passive declares for the tree's quorum queues (whose <c>list_queues</c> counts are the same 5 s old metrics).
    /// </summary>
    public static async Task<Holding> HoldingAsync(FaultNode node, string vhost, bool live = false)
    {
        var queues = new List<(string Name, long Messages)>();
        if (live)
        {
            var run = await node.CtlAsync("list_queues", "-p", vhost, "--no-table-headers", "--quiet", "name", "messages");
            foreach (var line in run.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                var fields = line.Split('\t');
                if (fields.Length == 2 && long.TryParse(fields[1], CultureInfo.InvariantCulture, out var count))
                    queues.Add((fields[0].Trim(), count));
            }
            queues.RemoveAll(q => q.Name.StartsWith(TreePrefix, StringComparison.Ordinal));
            var factory = new RabbitMQ.Client.ConnectionFactory { Uri = new Uri(node.Url(vhost)) };
            await using var connection = await factory.CreateConnectionAsync();
            foreach (var name in Enumerable.Range(0, DelayTopology.Levels).Select(BrokerNames.DelayQueue)) // no consumers: ready = all
                queues.Add((name, await LaneQueueTopology.MessagesInAsync(connection, name, CancellationToken.None) ?? 0));
        }
        else
        {
            using var response = await node.Management.GetAsync($"api/queues/{Uri.EscapeDataString(vhost)}?columns=name,messages");
            response.EnsureSuccessStatusCode();
            foreach (var queue in (await response.Content.ReadFromJsonAsync<JsonElement>()).EnumerateArray())
                queues.Add((queue.GetProperty("name").GetString()!,
                    queue.TryGetProperty("messages", out var m) && m.ValueKind == JsonValueKind.Number ? m.GetInt64() : 0));
        }
        var laneQueues = SessionLanes.All.Select(BrokerNames.LaneQueue).ToHashSet(StringComparer.Ordinal);
        return new Holding(
            queues.Where(q => q.Name.StartsWith(TreePrefix, StringComparison.Ordinal)).Sum(q => q.Messages),
            queues.Where(q => laneQueues.Contains(q.Name)).Sum(q => q.Messages));
    }

    /// <summary>
    /// Waits (bounded) until the management API shows <paramref name="inTree"/> messages in the delay tree and none in the
    /// lanes (its counts are refreshed every few seconds); returns the last reading either way.
    /// </summary>
    public static async Task<Holding> WaitUntilParkedAsync(FaultNode node, string vhost, long inTree, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var holding = await HoldingAsync(node, vhost);
            if ((holding.InDelayTree == inTree && holding.InLanes == 0) || DateTime.UtcNow > deadline)
                return holding;
            await Task.Delay(500);
        }
    }
}
