using System.Collections.Concurrent;
using System.Text.Json;
using LaneQueue.Contracts;
using LaneQueue.Producer;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace LaneQueue.Tests.Faults;

/// <summary>
/// Counts what happened to every task, from the broker's point of view: which ids the producers got confirmed
/// (accepted), and every result on <c>lanequeue.results</c> (bound with <c>#</c> to a durable queue of its own, so
/// results published while the tally is disconnected wait for it) and every <c>command.started</c> event.
/// </summary>
public sealed class ResultTally : IAsyncDisposable
{
    readonly ConcurrentDictionary<string, byte> _accepted = new(StringComparer.Ordinal);
    readonly ConcurrentDictionary<string, ConcurrentQueue<ExternalTaskResult>> _results = new(StringComparer.Ordinal);
    readonly ConcurrentDictionary<string, ConcurrentQueue<string>> _starts = new(StringComparer.Ordinal);
    readonly ConcurrentDictionary<string, ConcurrentQueue<DateTimeOffset>> _startTimes = new(StringComparer.Ordinal);
    readonly IConnection _connection;
    readonly IChannel _channel;
    readonly string _resultsQueue;
    int _rejected;
    int _transient;

    /// <summary>Results that arrived as non-persistent messages (a broker crash would lose those in a queue).</summary>
    public int TransientResults => Volatile.Read(ref _transient);

    ResultTally(IConnection connection, IChannel channel, string resultsQueue)
    {
        _connection = connection;
        _channel = channel;
        _resultsQueue = resultsQueue;
    }

    /// <param name="quorum">Make the tally's queues quorum queues (a cluster where a node may go away).</param>
    public static async Task<ResultTally> StartAsync(string url, bool quorum = false)
    {
        var connection = await BrokerConnection.ConnectAsync(url, "fault-test-tally");
        var channel = await connection.CreateChannelAsync();
        await BrokerTopology.DeclareAsync(channel);
        var arguments = quorum ? new Dictionary<string, object?> { ["x-queue-type"] = "quorum" } : null;
        var suffix = Guid.NewGuid().ToString("N")[..8];
        var results = $"fault-test.results.{suffix}";
        var events = $"fault-test.events.{suffix}";
        await channel.QueueDeclareAsync(results, durable: true, exclusive: false, autoDelete: false, arguments);
        await channel.QueueBindAsync(results, BrokerNames.ResultsExchange, "#");
        await channel.QueueDeclareAsync(events, durable: true, exclusive: false, autoDelete: false, arguments);
        await channel.QueueBindAsync(events, BrokerNames.EventsExchange, TaskEvent.Started + ".*");
        await channel.BasicQosAsync(0, 500, false);

        var tally = new ResultTally(connection, channel, results);
        var resultConsumer = new AsyncEventingBasicConsumer(channel);
        resultConsumer.ReceivedAsync += async (_, delivery) =>
        {
            try
            {
                if (!delivery.BasicProperties.Persistent)
                    Interlocked.Increment(ref tally._transient);
                var result = TaskJson.Deserialize<ExternalTaskResult>(delivery.Body.Span);
                tally._results.GetOrAdd(result.TaskId, _ => new()).Enqueue(result);
            }
            catch (JsonException)
            {
                Interlocked.Increment(ref tally._rejected);
            }
            await channel.BasicAckAsync(delivery.DeliveryTag, false);
        };
        await channel.BasicConsumeAsync(results, autoAck: false, resultConsumer);
        var eventConsumer = new AsyncEventingBasicConsumer(channel);
        eventConsumer.ReceivedAsync += async (_, delivery) =>
        {
            try
            {
                var started = TaskJson.Deserialize<TaskEvent>(delivery.Body.Span);
                tally._starts.GetOrAdd(started.TaskId, _ => new()).Enqueue(started.Consumer ?? "?");
                tally._startTimes.GetOrAdd(started.TaskId, _ => new()).Enqueue(started.At);
            }
            catch (JsonException)
            {
            }
            await channel.BasicAckAsync(delivery.DeliveryTag, false);
        };
        await channel.BasicConsumeAsync(events, autoAck: false, eventConsumer);
        return tally;
    }

    public void Accepted(string taskId) => _accepted.TryAdd(taskId, 0);

    public int AcceptedCount => _accepted.Count;

    public IReadOnlyCollection<string> AcceptedIds => _accepted.Keys.ToList();

    public int CompletedCount => _accepted.Keys.Count(IsCompleted);

    bool IsCompleted(string id) => _results.TryGetValue(id, out var results) && results.Any(r => r.Status == TaskStatuses.Completed);

    public IReadOnlyList<ExternalTaskResult> ResultsOf(string id) => _results.TryGetValue(id, out var results) ? [.. results] : [];

    /// <summary>The consumers that started a task, in order (from the best-effort <c>command.started</c> events).</summary>
    public IReadOnlyList<string> StartsOf(string id) => _starts.TryGetValue(id, out var starts) ? [.. starts] : [];

    /// <summary>When each start of the task happened (the consumer's clock, from its <c>command.started</c> events).</summary>
    public IReadOnlyList<DateTimeOffset> StartTimesOf(string id) => _startTimes.TryGetValue(id, out var times) ? [.. times] : [];

    public IEnumerable<string> StartedBy(string consumer) => _starts.Where(kv => kv.Value.Contains(consumer)).Select(kv => kv.Key);

    public sealed record Counts(int Accepted, int Completed, int Duplicated, int Lost, int DuplicateSkips, int OtherResults, int Started, int StartedTwice,
        int CompletedUnconfirmed)
    {
        public override string ToString() =>
            $"accepted={Accepted} completed={Completed} duplicated={Duplicated} lost={Lost} " +
            $"(duplicate deliveries skipped by the ledger={DuplicateSkips}, other results={OtherResults}, started={Started}, started more than once={StartedTwice}, " +
            $"completed without a confirm to the producer={CompletedUnconfirmed})";
    }

    /// <summary>
    /// accepted: confirmed by the broker to a producer; completed: accepted ids with a <c>completed</c> result;
    /// duplicated: ids that completed more than once (distinct runs); lost: accepted ids without a <c>completed</c> result.
    /// </summary>
    public Counts Count()
    {
        var accepted = _accepted.Keys.ToList();
        var completed = accepted.Count(IsCompleted);
        // A result delivered twice to this tally (its ack lost in a broker restart) is one run; distinct runs differ in consumer or start time.
        var duplicated = _results.Count(kv => kv.Value.Where(r => r.Status == TaskStatuses.Completed).Select(r => (r.Consumer, r.StartedAt)).Distinct().Count() > 1);
        var skips = _results.Values.Sum(q => q.Count(r => r.Status == TaskStatuses.Duplicate));
        var other = _results.Values.Sum(q => q.Count(r => r.Status is not (TaskStatuses.Completed or TaskStatuses.Duplicate)));
        // A submit that failed on the producer's side (no confirm) may still have been stored by the broker: at least once.
        var unconfirmed = _results.Count(kv => !_accepted.ContainsKey(kv.Key) && kv.Value.Any(r => r.Status == TaskStatuses.Completed));
        return new Counts(accepted.Count, completed, duplicated, accepted.Count - completed, skips, other,
            _starts.Count, _starts.Count(kv => kv.Value.Count > 1), unconfirmed);
    }

    /// <summary>Waits (bounded) until every accepted task has completed; returns the counts either way.</summary>
    public async Task<Counts> WaitForAllAsync(TimeSpan timeout, Action<string>? progress = null, IReadOnlySet<string>? ignore = null)
    {
        var deadline = DateTime.UtcNow + timeout;
        var lastReport = DateTime.UtcNow;
        while (DateTime.UtcNow < deadline && _accepted.Keys.Any(id => !IsCompleted(id) && ignore?.Contains(id) != true))
        {
            await Task.Delay(200);
            if (progress is not null && DateTime.UtcNow - lastReport > TimeSpan.FromSeconds(10))
            {
                lastReport = DateTime.UtcNow;
                progress($"{DateTime.UtcNow:HH:mm:ss} waiting: {Count()}");
            }
        }
        await Task.Delay(500); // late duplicates, if any, show up in the counts
        return Count();
    }

    public IEnumerable<string> Missing() => _accepted.Keys.Where(id => !IsCompleted(id)).Order(StringComparer.Ordinal);

    /// <summary>What is known of the tasks that did not complete (for failure messages).</summary>
    public string DescribeMissing(int max = 10) => string.Join("\n", Missing().Take(max).Select(id =>
        $"  {id}: started by [{string.Join(", ", StartsOf(id))}], results [{string.Join("; ", ResultsOf(id).Select(r => $"{r.Status} on {r.Consumer}: {r.Error}"))}]"));

    public async ValueTask DisposeAsync()
    {
        try
        {
            await _channel.QueueDeleteAsync(_resultsQueue);
        }
        catch (Exception ex) when (ex is RabbitMQ.Client.Exceptions.AlreadyClosedException or RabbitMQ.Client.Exceptions.OperationInterruptedException)
        {
        }
        await _channel.DisposeAsync();
        await _connection.DisposeAsync();
    }
}
