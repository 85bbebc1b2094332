using LaneQueue.Contracts;
using LaneQueue.Producer;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;

namespace LaneQueue.Consumer;

/// <summary>
/// Whether a redelivered task already completed somewhere in the fleet: the case of a consumer that published a task's
/// result and died (or lost its connection) before its ack. The broker keeps every result in the task history stream
/// (<see cref="BrokerNames.History"/>), written with the result itself, so the answer does not depend on any consumer
/// having heard of the completion. Only redeliveries ask (the broker sets the flag; they follow a crash, a lost
/// connection or a stopped endpoint), so a task costs the broker nothing here in the common case. Concurrent questions are
/// answered by one read of the stream, from the oldest task's <c>created_at</c> (at most <see cref="TaskLedger.Window"/>
/// back) to its end.
/// </summary>
internal sealed class RedeliveryCheck(IOptions<LaneQueueOptions> options, ILogger<RedeliveryCheck> logger) : IAsyncDisposable
{
    /// <summary>Clock skew allowed between the producer that stamped <c>created_at</c> and the broker.</summary>
    static readonly TimeSpan Skew = TimeSpan.FromSeconds(5);

    static readonly TimeSpan ReadTimeout = TimeSpan.FromSeconds(30);

    sealed record Request(string TaskId, DateTimeOffset From, TaskCompletionSource<ExternalTaskResult?> Answer);

    readonly List<Request> _pending = [];
    readonly SemaphoreSlim _reading = new(1, 1);
    IConnection? _connection;
    long _reads;

    /// <summary>Reads of the history stream so far (each answers every question asked meanwhile).</summary>
    public long Reads => Interlocked.Read(ref _reads);

    /// <summary>
    /// The <c>completed</c> (or <c>cancelled</c>) result the task already has, or null: none in the window, or the history
    /// could not be read in time (then the task runs again: at least once).
    /// </summary>
    public async Task<ExternalTaskResult?> CompletedResultAsync(ExternalTask task, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(task);
        var oldest = DateTimeOffset.UtcNow - TaskLedger.Window;
        var request = new Request(task.Id, task.CreatedAt - Skew > oldest ? task.CreatedAt - Skew : oldest,
            new TaskCompletionSource<ExternalTaskResult?>(TaskCreationOptions.RunContinuationsAsynchronously));
        lock (_pending)
            _pending.Add(request);
        await _reading.WaitAsync(cancellationToken);
        try
        {
            if (!request.Answer.Task.IsCompleted)
            {
                List<Request> batch;
                lock (_pending)
                {
                    batch = [.. _pending];
                    _pending.Clear();
                }
                await ReadAsync(batch, cancellationToken);
            }
        }
        finally
        {
            _reading.Release();
        }
        return await request.Answer.Task;
    }

    async Task ReadAsync(List<Request> batch, CancellationToken cancellationToken)
    {
        var settings = options.Value;
        try
        {
            _connection ??= await BrokerConnection.ConnectAsync(settings.RabbitMqUrl, $"{settings.ConsumerName}-history", cancellationToken);
            var ids = batch.Select(r => r.TaskId).ToHashSet(StringComparer.Ordinal);
            var found = await TaskHistoryReader.ReadAsync(_connection, ids, batch.Min(r => r.From), ReadTimeout, cancellationToken);
            Interlocked.Increment(ref _reads);
            foreach (var request in batch)
            {
                request.Answer.TrySetResult(found.TryGetValue(request.TaskId, out var history)
                    ? history.Results.LastOrDefault(r => r.Status is TaskStatuses.Completed or TaskStatuses.Cancelled)
                    : null);
            }
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            Log.RedeliveryCheckFailed(logger, batch.Count, ex.Message);
            foreach (var request in batch)
                request.Answer.TrySetResult(null);
        }
        catch (OperationCanceledException)
        {
            foreach (var request in batch)
                request.Answer.TrySetCanceled(cancellationToken);
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_connection is not null)
            await _connection.DisposeAsync();
        _reading.Dispose();
    }
}
