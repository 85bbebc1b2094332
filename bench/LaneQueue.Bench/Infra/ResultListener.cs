using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using LaneQueue.Contracts;
using LaneQueue.Producer;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace LaneQueue.Bench.Infra;

/// <summary>One task's result as the bench read it off <c>lanequeue.results</c>.</summary>
public sealed record TaskOutcome(string Id, string Lane, bool Success, DateTimeOffset StartedAt, DateTimeOffset FinishedAt,
    string? Consumer, DateTimeOffset ReceivedAt);

/// <summary>
/// Reads every result of a vhost: one exclusive queue bound to the results exchange with <c>#</c>. LaneQueue consumers
/// and the bench's baseline consumers publish the same result JSON (task_id, lane, started_at, finished_at, consumer).
/// </summary>
public sealed class ResultListener : IAsyncDisposable
{
    readonly ConcurrentDictionary<string, TaskOutcome> _results = new();
    readonly ConcurrentDictionary<string, TaskCompletionSource<TaskOutcome>> _waiting = new();
    IConnection _connection = null!;
    IChannel _channel = null!;
    int _count;

    public int Count => Volatile.Read(ref _count);

    public IReadOnlyCollection<TaskOutcome> All => _results.Values.ToList();

    public TaskOutcome? Get(string id) => _results.TryGetValue(id, out var r) ? r : null;

    public static async Task<ResultListener> StartAsync(string url, CancellationToken cancellationToken)
    {
        var listener = new ResultListener();
        listener._connection = await BrokerConnection.ConnectAsync(url, "lanequeue-bench-results", cancellationToken);
        listener._channel = await listener._connection.CreateChannelAsync(cancellationToken: cancellationToken);
        await BrokerTopology.DeclareAsync(listener._channel, cancellationToken);
        var queue = await listener._channel.QueueDeclareAsync($"bench.results.{Guid.NewGuid():N}", durable: false, exclusive: true,
            autoDelete: true, cancellationToken: cancellationToken);
        await listener._channel.QueueBindAsync(queue.QueueName, BrokerNames.ResultsExchange, "#", cancellationToken: cancellationToken);
        var consumer = new AsyncEventingBasicConsumer(listener._channel);
        consumer.ReceivedAsync += (_, delivery) =>
        {
            listener.OnResult(delivery.Body.Span);
            return Task.CompletedTask;
        };
        await listener._channel.BasicConsumeAsync(queue.QueueName, autoAck: true, consumer, cancellationToken);
        return listener;
    }

    void OnResult(ReadOnlySpan<byte> body)
    {
        var now = DateTimeOffset.UtcNow;
        try
        {
            using var json = JsonDocument.Parse(body.ToArray());
            var root = json.RootElement;
            var outcome = new TaskOutcome(
                root.GetProperty("task_id").GetString()!,
                root.TryGetProperty("lane", out var lane) ? lane.GetString() ?? "" : "",
                !root.TryGetProperty("success", out var success) || success.GetBoolean(),
                root.GetProperty("started_at").GetDateTimeOffset(),
                root.GetProperty("finished_at").GetDateTimeOffset(),
                root.TryGetProperty("consumer", out var consumer) ? consumer.GetString() : null,
                now);
            if (_results.TryAdd(outcome.Id, outcome))
                Interlocked.Increment(ref _count);
            if (_waiting.TryRemove(outcome.Id, out var waiter))
                waiter.TrySetResult(outcome);
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            // not a result of ours
        }
    }

    /// <summary>The result of one task, or null when none arrives in time.</summary>
    public async Task<TaskOutcome?> WaitForAsync(string id, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var waiter = _waiting.GetOrAdd(id, _ => new TaskCompletionSource<TaskOutcome>(TaskCreationOptions.RunContinuationsAsynchronously));
        if (_results.TryGetValue(id, out var done))
            return done;
        try
        {
            return await waiter.Task.WaitAsync(timeout, cancellationToken);
        }
        catch (TimeoutException)
        {
            return null;
        }
    }

    /// <summary>Waits (bounded, polling every 5 ms) until <paramref name="condition"/> holds; false on time-out.</summary>
    public static async Task<bool> UntilAsync(Func<bool> condition, TimeSpan timeout, CancellationToken cancellationToken, int pollMs = 5)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > timeout)
                return false;
            await Task.Delay(pollMs, cancellationToken);
        }
        return true;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await _channel.DisposeAsync();
            await _connection.DisposeAsync();
        }
        catch (Exception ex) when (ex is RabbitMQ.Client.Exceptions.OperationInterruptedException or RabbitMQ.Client.Exceptions.AlreadyClosedException or IOException)
        {
        }
    }
}
