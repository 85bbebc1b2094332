using System.Diagnostics;
using System.Text.Json;
using LaneQueue.Contracts;
using MassTransit;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace LaneQueue.Consumer;

/// <summary>
/// Runs one delivered task: reads it from the raw body (plain JSON or MassTransit envelope), takes a slot,
/// runs its handler under the task's timeout, publishes the result, and only then lets MassTransit ack.
/// Anything that fails is published as a failed result and thrown, so the message goes to the lane's
/// dead-letter queue with the reason in <see cref="BrokerNames.ReasonHeader"/>; it is never acked as a success.
/// </summary>
public sealed class LaneTaskConsumer(
    TaskHandlers handlers,
    IServiceProvider services,
    SlotBudget slots,
    LaneActivity activity,
    IOptions<LaneQueueOptions> options,
    ILogger<LaneTaskConsumer> logger) : IConsumer<TaskDelivery>
{
    public async Task Consume(ConsumeContext<TaskDelivery> context)
    {
        var settings = options.Value;
        var task = ReadTask(context, settings);
        var startedAt = DateTimeOffset.UtcNow;
        try
        {
            var handler = handlers.Resolve(task.CommandType, services)
                ?? throw new InvalidTaskException("command_type",
                    $"'{task.CommandType}' has no handler on consumer {settings.ConsumerName}; known: {string.Join(", ", handlers.CommandTypes)}");

            using var slot = await slots.AcquireAsync(task.Lane, context.CancellationToken);
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken);
            if ((task.TimeoutMs ?? settings.Queue.TimeoutMs(task.Lane)) is { } timeoutMs)
                timeout.CancelAfter(TimeSpan.FromMilliseconds(Math.Clamp(timeoutMs - (long)(DateTimeOffset.UtcNow - task.CreatedAt).TotalMilliseconds, 1, TaskParser.MaxTimeoutMs)));

            startedAt = DateTimeOffset.UtcNow;
            activity.Started(task.Lane);
            Log.TaskStarted(logger, task.Id, task.Lane.WireName(), (long)(startedAt - task.CreatedAt).TotalMilliseconds);
            var clock = Stopwatch.StartNew();
            object? value;
            try
            {
                value = await handler.HandleAsync(new TaskContext
                {
                    Task = task,
                    ConsumerName = settings.ConsumerName,
                    CancellationToken = timeout.Token,
                });
            }
            catch (OperationCanceledException) when (timeout.IsCancellationRequested && !context.CancellationToken.IsCancellationRequested)
            {
                throw new TimeoutException($"task '{task.Id}' ran past its timeout");
            }
            finally
            {
                activity.Finished(task.Lane);
            }

            await PublishResultAsync(context, new ExternalTaskResult
            {
                TaskId = task.Id,
                Lane = task.Lane,
                Success = true,
                Status = TaskStatuses.Completed,
                Result = value switch
                {
                    null => TaskJson.EmptyObject,
                    JsonElement element => element,
                    _ => JsonSerializer.SerializeToElement(value, TaskJson.Options),
                },
                SessionId = task.SessionId,
                Consumer = settings.ConsumerName,
                StartedAt = startedAt,
                FinishedAt = DateTimeOffset.UtcNow,
            });
            Log.TaskCompleted(logger, task.Id, task.Lane.WireName(), clock.ElapsedMilliseconds);
        }
        catch (Exception ex) when (!context.CancellationToken.IsCancellationRequested)
        {
            var status = ex is TimeoutException ? TaskStatuses.TimedOut : TaskStatuses.DeadLettered;
            Log.TaskFailed(logger, task.Id, task.Lane.WireName(), status, ex.Message);
            await PublishResultAsync(context, new ExternalTaskResult
            {
                TaskId = task.Id,
                Lane = task.Lane,
                Success = false,
                Status = status,
                Error = ex.Message,
                SessionId = task.SessionId,
                Consumer = settings.ConsumerName,
                StartedAt = startedAt,
                FinishedAt = DateTimeOffset.UtcNow,
            });
            throw;
        }
    }

    ExternalTask ReadTask(ConsumeContext context, LaneQueueOptions settings)
    {
        var queue = context.ReceiveContext.InputAddress.AbsolutePath.Split('/')[^1];
        try
        {
            var task = TaskParser.Parse(context.ReceiveContext.Body.GetBytes(), settings.MaxPayloadBytes);
            if (settings.Topology == LaneTopology.QueuePerLane && queue != BrokerNames.LaneQueue(task.Lane))
                throw new InvalidTaskException("lane", $"the task says '{task.Lane.WireName()}' but was routed to queue '{queue}'; publish with routing key = lane");
            return task;
        }
        catch (InvalidTaskException ex)
        {
            Log.MessageRejected(logger, queue, ex.Message);
            throw;
        }
    }

    static async Task PublishResultAsync(ConsumeContext context, ExternalTaskResult result)
    {
        var endpoint = await context.GetSendEndpoint(ResultsAddress);
        await endpoint.Send(result, send => send.SetRoutingKey(result.TaskId));
    }

    static readonly Uri ResultsAddress = new($"exchange:{BrokerNames.ResultsExchange}?type=topic&durable=true&autodelete=false");
}
