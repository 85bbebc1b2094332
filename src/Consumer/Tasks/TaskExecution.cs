using System.Text.Json;
using LaneQueue.Contracts;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace LaneQueue.Consumer;

/// <summary>How one run of a task ended (see <see cref="TaskExecution"/>).</summary>
internal abstract record RunEnd
{
    /// <summary>The handler (or external worker) returned this result.</summary>
    public sealed record Completed(JsonElement Result) : RunEnd;

    /// <summary>The handler gave its slot up; the task resumes from this checkpoint.</summary>
    public sealed record Yielded(JsonElement? Checkpoint) : RunEnd;

    /// <summary>The task was cancelled while it ran.</summary>
    public sealed record Cancelled : RunEnd;

    /// <summary>
    /// The run failed. <see cref="Retryable"/> is false for a failure that can never succeed (<see cref="TaskErrors.IsPermanent"/>:
    /// the payload does not fit the handler, the handler threw <see cref="PermanentTaskException"/>, the result cannot be
    /// written), which goes to the dead-letter queue without retries.
    /// </summary>
    public sealed record Failed(string Error, bool TimedOut, bool Retryable, Exception Exception) : RunEnd;
}

/// <summary>
/// Runs one admitted task: its handler (or the external worker, per the lane's handler mode) under its timeout, with the
/// tokens that cancel it or ask it to yield, and says how the run ended. Publishes nothing itself except the external
/// announcement; <see cref="TaskOutcome"/> records what the run's end means.
/// </summary>
internal sealed class TaskExecution(TaskHandlers handlers, IServiceProvider services, ExternalTasks external, IOptions<LaneQueueOptions> options)
{
    /// <summary>Refuses, before the task waits for a slot, a command type nobody handles (an External lane needs no handler).</summary>
    public void EnsureHandled(ExternalTask task, LaneHandlerConfig mode)
    {
        ArgumentNullException.ThrowIfNull(task);
        if (mode.Mode != TaskHandlerMode.External && !handlers.Handles(task.CommandType))
            throw new InvalidTaskException("command_type",
                $"'{task.CommandType}' has no handler on consumer {options.Value.ConsumerName}; known: {string.Join(", ", handlers.CommandTypes)}");
    }

    /// <summary>
    /// A DI scope for one run: the handler and its scoped dependencies (a <c>DbContext</c>) come from it, and it is disposed
    /// when the run ends, like a MassTransit consumer's scope.
    /// </summary>
    public AsyncServiceScope CreateScope() => services.CreateAsyncScope();

    /// <summary>The handler for the task in this mode, from the run's scope (null for an External lane).</summary>
    public ITaskHandler? HandlerFor(ExternalTask task, LaneHandlerConfig mode, IServiceProvider scope)
    {
        EnsureHandled(task, mode);
        return mode.Mode == TaskHandlerMode.External ? null : handlers.Resolve(task.CommandType, scope);
    }

    /// <summary>How long this run may take: the task's <c>timeout_ms</c>, else the lane's (handler mode or queue settings).</summary>
    public long? TimeoutMs(ExternalTask task, LaneHandlerConfig mode) => TimeoutFor(task, mode, options.Value.Queue);

    /// <summary>The timeout rule, shared with the test harness: the task's, else the External lane's, else the queue settings'.</summary>
    internal static long? TimeoutFor(ExternalTask task, LaneHandlerConfig mode, SessionQueueConfig queue) =>
        mode.Mode == TaskHandlerMode.External ? task.TimeoutMs ?? mode.TimeoutMs : task.TimeoutMs ?? queue.TimeoutMs(task.Lane);

    /// <summary>
    /// Runs the task with its handler (from the run's own scope, <see cref="CreateScope"/>), which reports progress to <paramref name="progress"/>. <paramref name="stopping"/> fires when the task is cancelled or the delivery is abandoned;
    /// <paramref name="abandoned"/> alone (the consumer stopping past its drain time) lets the exception through.
    /// </summary>
    public Task<RunEnd> RunAsync(ExternalTask task, int attempt, RunningTasks.Run run, ITaskHandler? handler, LaneHandlerConfig mode,
        DateTimeOffset startedAt, ProgressReports progress, CancellationToken stopping, CancellationToken abandoned)
    {
        ArgumentNullException.ThrowIfNull(task);
        var consumerName = options.Value.ConsumerName;
        return InvokeAsync(task, attempt, consumerName, run, handler, mode, TimeoutMs(task, mode), startedAt, progress,
            (timeout, cancellationToken) => external.RunAsync(task, attempt, consumerName, timeout, cancellationToken),
            () => external.AnnounceHybridAsync(task, consumerName, stopping), stopping, abandoned);
    }

    /// <summary>
    /// One run, shared with the test harness so the two cannot disagree: the deadline from <paramref name="timeoutMs"/>, the
    /// handler (announced first in Hybrid mode) or, without one, the external worker (<paramref name="externalRun"/>), and
    /// what its end means: a cancel while it ran, a time-out, a failure (permanent or retryable) or its result / yield.
    /// </summary>
    internal static async Task<RunEnd> InvokeAsync(ExternalTask task, int attempt, string consumerName, RunningTasks.Run run,
        ITaskHandler? handler, LaneHandlerConfig mode, long? timeoutMs, DateTimeOffset startedAt, ProgressReports progress,
        Func<TimeSpan, CancellationToken, Task<ExternalCompletion>> externalRun, Func<Task> announceHybrid,
        CancellationToken stopping, CancellationToken abandoned)
    {
        ArgumentNullException.ThrowIfNull(task);
        ArgumentNullException.ThrowIfNull(run);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(stopping);
        if (timeoutMs is { } ms)
            deadline.CancelAfter(TimeSpan.FromMilliseconds(Math.Clamp(ms, 1, TaskParser.MaxTimeoutMs)));
        RunEnd end;
        try
        {
            if (handler is null)
            {
                var completion = await externalRun(TimeSpan.FromMilliseconds(timeoutMs ?? mode.TimeoutMs), deadline.Token).ConfigureAwait(false);
                end = completion.Success ? Ended(completion.Result) : throw new ExternalTaskFailedException(completion.Error ?? "the external worker reported a failure");
            }
            else
            {
                if (mode.Mode == TaskHandlerMode.Hybrid)
                    await announceHybrid().ConfigureAwait(false);
                end = Ended(await handler.HandleAsync(new TaskContext
                {
                    Task = task,
                    ConsumerName = consumerName,
                    Attempt = attempt,
                    StartedAt = startedAt,
                    TimeoutMs = timeoutMs,
                    CancellationToken = deadline.Token,
                    YieldRequested = run.Yield.Token,
                    Progress = progress,
                }).WaitAsync(deadline.Token).ConfigureAwait(false)); // a handler that ignores its token is abandoned at the deadline, its slot freed
            }
        }
        catch (OperationCanceledException) when (run.Cancel.IsCancellationRequested)
        {
            return new RunEnd.Cancelled();
        }
        catch (Exception ex) when (!abandoned.IsCancellationRequested)
        {
            var timedOut = deadline.IsCancellationRequested && !stopping.IsCancellationRequested || ex is TimeoutException;
            return new RunEnd.Failed(timedOut ? $"timed out after {timeoutMs} ms" : ex.Message, timedOut, !TaskErrors.IsPermanent(ex), ex);
        }
        return end;
    }

    /// <summary>What a handler's return value means; inside the run's error handling, so a result that cannot be JSON fails the run.</summary>
    static RunEnd Ended(object? value) => value is TaskYield yielded
        ? new RunEnd.Yielded(yielded.Checkpoint is null ? null : TaskErrors.ResultJson(yielded.Checkpoint))
        : new RunEnd.Completed(TaskErrors.ResultJson(value));
}

/// <summary>An external worker completed a task with <c>success: false</c>.</summary>
internal sealed class ExternalTaskFailedException(string message) : Exception(message);
