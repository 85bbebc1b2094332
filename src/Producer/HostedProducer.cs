using LaneQueue.Contracts;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace LaneQueue.Producer;

/// <summary>
/// The <see cref="ILaneQueueProducer"/> of <see cref="ProducerRegistration.AddLaneQueueProducer(Microsoft.Extensions.DependencyInjection.IServiceCollection, Action{ProducerOptions}?)"/>:
/// one <see cref="LaneQueueProducer"/>, connected when the host starts (or on first use without a host), shared by every
/// caller, disposed with the container.
/// </summary>
internal sealed partial class HostedProducer(IOptions<ProducerOptions> options, ILogger<HostedProducer>? logger = null) : ILaneQueueProducer, IHostedService, IAsyncDisposable, IDisposable
{
    readonly Lock _gate = new();
    readonly CancellationTokenSource _disposing = new();
    readonly ILogger _logger = logger ?? (ILogger)NullLogger.Instance;
    Task<LaneQueueProducer>? _connecting;
    bool _disposed;

    /// <summary>Connects at host start, so a broker that cannot be reached or lanes that differ fail the start.</summary>
    public Task StartAsync(CancellationToken cancellationToken) => ProducerAsync(cancellationToken);

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>The connected producer: the connect in progress or done, or a new one when there is none or the last failed.</summary>
    async Task<LaneQueueProducer> ProducerAsync(CancellationToken cancellationToken)
    {
        Task<LaneQueueProducer> connecting;
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_connecting is null || _connecting.IsFaulted || _connecting.IsCanceled)
                _connecting = ConnectAsync();
            connecting = _connecting;
        }
        return await connecting.WaitAsync(cancellationToken);
    }

    /// <summary>The connected <see cref="LaneQueueProducer"/> (for the dashboard, which needs more than <see cref="ILaneQueueProducer"/>).</summary>
    internal Task<LaneQueueProducer> ConnectedAsync(CancellationToken cancellationToken) => ProducerAsync(cancellationToken);

    async Task<LaneQueueProducer> ConnectAsync()
    {
        var settings = options.Value;
        var producer = await LaneQueueProducer.ConnectAsync(settings, _disposing.Token);
        LogConnected(_logger, BrokerConnection.Redact(settings.RabbitMqUrl), settings.Topology, settings.QuorumQueues);
        return producer;
    }

    public async Task SubmitTaskAsync(ExternalTask task, CancellationToken cancellationToken = default) =>
        await (await ProducerAsync(cancellationToken)).SubmitTaskAsync(task, cancellationToken);

    public async Task<ExternalTaskResult> SubmitAndWaitAsync(ExternalTask task, TimeSpan timeout, CancellationToken cancellationToken = default) =>
        await (await ProducerAsync(cancellationToken)).SubmitAndWaitAsync(task, timeout, cancellationToken);

    public async Task<Task<ExternalTaskResult>> WatchResultAsync(string taskId, CancellationToken cancellationToken = default) =>
        await (await ProducerAsync(cancellationToken)).WatchResultAsync(taskId, cancellationToken);

    public async Task CancelTaskAsync(string taskId, CancellationToken cancellationToken = default) =>
        await (await ProducerAsync(cancellationToken)).CancelTaskAsync(taskId, cancellationToken);

    public async Task CancelSessionAsync(string sessionId, CancellationToken cancellationToken = default) =>
        await (await ProducerAsync(cancellationToken)).CancelSessionAsync(sessionId, cancellationToken);

    public async Task InterruptSessionAsync(string sessionId, bool cancel = false, CancellationToken cancellationToken = default) =>
        await (await ProducerAsync(cancellationToken)).InterruptSessionAsync(sessionId, cancel, cancellationToken);

    public async Task StopWatchingResultAsync(string taskId) =>
        await (await ProducerAsync(CancellationToken.None)).StopWatchingResultAsync(taskId);

    public async Task PauseLaneAsync(SessionLane lane, CancellationToken cancellationToken = default) =>
        await (await ProducerAsync(cancellationToken)).PauseLaneAsync(lane, cancellationToken);

    public async Task ResumeLaneAsync(SessionLane lane, CancellationToken cancellationToken = default) =>
        await (await ProducerAsync(cancellationToken)).ResumeLaneAsync(lane, cancellationToken);

    public async Task CompleteExternalTaskAsync(ExternalCompletion completion, CancellationToken cancellationToken = default) =>
        await (await ProducerAsync(cancellationToken)).CompleteExternalTaskAsync(completion, cancellationToken);

    public async Task<IReadOnlyList<PendingExternalTask>> GetPendingExternalTasksAsync(CancellationToken cancellationToken = default) =>
        await (await ProducerAsync(cancellationToken)).GetPendingExternalTasksAsync(cancellationToken);

    public async Task<TaskHistory> GetTaskHistoryAsync(string taskId, TimeSpan? lookBack = null, CancellationToken cancellationToken = default) =>
        await (await ProducerAsync(cancellationToken)).GetTaskHistoryAsync(taskId, lookBack, cancellationToken);

    public async Task<IAsyncDisposable> WatchEventsAsync(Func<TaskEvent, Task> onEvent, string pattern = "command.#", CancellationToken cancellationToken = default) =>
        await (await ProducerAsync(cancellationToken)).WatchEventsAsync(onEvent, pattern, cancellationToken);

    public async Task AddScheduleAsync(TaskSchedule schedule, CancellationToken cancellationToken = default) =>
        await (await ProducerAsync(cancellationToken)).AddScheduleAsync(schedule, cancellationToken);

    public async Task<IReadOnlyList<ScheduleInfo>> ListSchedulesAsync(CancellationToken cancellationToken = default) =>
        await (await ProducerAsync(cancellationToken)).ListSchedulesAsync(cancellationToken);

    public async Task PauseScheduleAsync(string scheduleId, CancellationToken cancellationToken = default) =>
        await (await ProducerAsync(cancellationToken)).PauseScheduleAsync(scheduleId, cancellationToken);

    public async Task ResumeScheduleAsync(string scheduleId, CancellationToken cancellationToken = default) =>
        await (await ProducerAsync(cancellationToken)).ResumeScheduleAsync(scheduleId, cancellationToken);

    public async Task RemoveScheduleAsync(string scheduleId, CancellationToken cancellationToken = default) =>
        await (await ProducerAsync(cancellationToken)).RemoveScheduleAsync(scheduleId, cancellationToken);

    /// <summary>Closes the connection (idempotent: the container disposes this once per service it is registered as).</summary>
    public async ValueTask DisposeAsync()
    {
        Task<LaneQueueProducer>? connecting;
        lock (_gate)
        {
            if (_disposed)
                return;
            _disposed = true;
            connecting = _connecting;
        }
        await _disposing.CancelAsync();
        if (connecting is not null)
        {
            // A connect that failed was reported to whoever awaited it; there is nothing to close then.
            await ((Task)connecting).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            if (connecting.IsCompletedSuccessfully)
                await connecting.Result.DisposeAsync();
        }
        _disposing.Dispose();
    }

    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    [LoggerMessage(1, LogLevel.Information, "LaneQueue producer connected to {Broker} (topology {Topology}, quorum queues {QuorumQueues})")]
    static partial void LogConnected(ILogger logger, string broker, LaneTopology topology, bool quorumQueues);
}
