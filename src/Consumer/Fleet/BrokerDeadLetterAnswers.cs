using LaneQueue.Contracts;
using LaneQueue.Producer;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace LaneQueue.Consumer;

/// <summary>
/// Answers the tasks the broker dead-lettered itself: past the quorum queue's delivery limit (a task that crashed every
/// consumer, and the neighbours it took down with it), expired by a TTL, pushed out by a length limit, or rejected by a
/// client that is not LaneQueue. Those never reach a consumer's failure path, so without this their senders would wait for
/// a result forever. Every lane's <c>_error</c> exchange copies its letters to <see cref="BrokerNames.BrokerDeadLetters"/>,
/// a queue with a single active consumer: every consumer process subscribes, the broker lets one of them consume, and the
/// next one takes over when it dies. For each copy whose <c>x-death</c> says the broker moved it (LaneQueue's own dead
/// letters carry <c>MT-Fault-Message</c> and were answered when they were moved), it publishes the <c>failed</c> result,
/// the <c>command.dead_lettered</c> event and its copy in the task history, and acks the copy, all in one AMQP
/// transaction: a consumer killed before the commit publishes nothing and its copy goes to the next consumer, so each
/// letter is answered once across the fleet. The letter itself stays in the <c>_error</c> queue for a look and a redrive.
/// Only lanes with a delivery limit (quorum queues) dead-letter through the broker; without one there is nothing to do.
/// </summary>
internal sealed class BrokerDeadLetterAnswers(
    IOptions<LaneQueueOptions> options,
    RedeliveryCheck history,
    ConsumerMetrics metrics,
    ILogger<BrokerDeadLetterAnswers> logger) : BackgroundService
{
    static readonly TimeSpan RetryDelay = TimeSpan.FromSeconds(2);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var settings = options.Value;
        if (!settings.QuorumQueues || settings.DeliveryLimit is null)
            return;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await ListenAsync(settings, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                Log.BrokerDeadLettersInterrupted(logger, ex.Message, RetryDelay.TotalSeconds);
            }
            try
            {
                await Task.Delay(RetryDelay, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>Consumes the copies until the channel or the connection closes (a failed answer closes it: rolled back).</summary>
    async Task ListenAsync(LaneQueueOptions settings, CancellationToken stoppingToken)
    {
        await using var connection = await BrokerConnection.ConnectAsync(settings.RabbitMqUrl, $"{settings.ConsumerName}-dead-letters", stoppingToken);
        await using var channel = await connection.CreateChannelAsync(cancellationToken: stoppingToken);
        await channel.TxSelectAsync(stoppingToken);
        await channel.BasicQosAsync(0, 1, global: false, stoppingToken);
        var closed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        channel.ChannelShutdownAsync += (_, reason) =>
        {
            closed.TrySetException(new InvalidOperationException($"channel closed: {reason.ReplyText}"));
            return Task.CompletedTask;
        };
        var consumer = new AsyncEventingBasicConsumer(channel);
        consumer.ReceivedAsync += async (_, delivery) =>
        {
            try
            {
                await AnswerAsync(channel, delivery, settings);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                // Nothing was committed: closing the channel rolls back and hands the copy to the next consumer (or this one again).
                closed.TrySetException(ex);
            }
        };
        await channel.BasicConsumeAsync(BrokerNames.BrokerDeadLetters, autoAck: false, consumer, stoppingToken);
        await closed.Task.WaitAsync(stoppingToken);
    }

    async Task AnswerAsync(IChannel channel, BasicDeliverEventArgs delivery, LaneQueueOptions settings)
    {
        var headers = delivery.BasicProperties.Headers;
        ExternalTask? task = null;
        string? error = null;
        if (Explain(headers, settings.DeliveryLimit) is { } why && TaskIdentity.Read(delivery.Body.Span) is { } identity
            && (identity.Lane ?? BrokerNames.LaneOfQueue(why.Death.Queue)) is { } lane)
        {
            var candidate = new ExternalTask { Id = identity.Id, Lane = lane, SessionId = identity.SessionId, CreatedAt = CreatedAt(delivery.Body) };
            // A copy of a task that completed (a neighbour that finished, then went down in a crash before its ack): its
            // completed result stands and is the task's answer; the copy gets none.
            if (await history.CompletedResultAsync(candidate, CancellationToken.None) is { } done)
                Log.AnswerSkipped(logger, candidate.Id, $"already {done.Status} on {done.Consumer}; its copy was dead-lettered by the broker ({why.Death.Reason})");
            else
            {
                task = candidate;
                error = why.Error;
                var attempt = AttemptOf(headers);
                var result = TaskRecords.Result(task, attempt, DateTimeOffset.UtcNow, TaskStatuses.Failed, error, TaskJson.EmptyObject, settings.ConsumerName);
                var taskEvent = TaskRecords.Event(TaskEvent.DeadLettered, task, attempt, error, settings.ConsumerName);
                var eventBody = TaskJson.Serialize(taskEvent);
                await channel.BasicPublishAsync(BrokerNames.ResultsExchange, task.Id, mandatory: false,
                    BrokerPublisher.ResultProperties(result, settings.ConsumerName), TaskJson.Serialize(result));
                await channel.BasicPublishAsync(BrokerNames.EventsExchange, BrokerNames.EventRoutingKey(taskEvent.Event, taskEvent.Lane), mandatory: false,
                    BrokerPublisher.EventProperties(taskEvent, inBatch: true), eventBody);
                await channel.BasicPublishAsync("", BrokerNames.History, mandatory: false, HistoryBatches.BatchProperties(settings.ConsumerName),
                    HistoryBatches.Body([eventBody]).WrittenMemory);
            }
        }
        await channel.BasicAckAsync(delivery.DeliveryTag, multiple: false);
        await channel.TxCommitAsync();
        if (task is not null)
        {
            metrics.Count(ConsumerMetrics.Outcome.DeadLettered, task.Lane);
            Log.TaskFailed(logger, task.Id, task.Lane.WireName(), TaskStatuses.Failed, error!);
        }
    }

    /// <summary>
    /// The error a broker dead letter is answered with, or null for a copy that needs no answer: one LaneQueue moved
    /// itself (answered then; it carries MassTransit's fault headers) or one the broker never dead-lettered.
    /// </summary>
    internal static (BrokerDeath Death, string Error)? Explain(IDictionary<string, object?>? headers, int? deliveryLimit)
    {
        if (BrokerDeath.Read(headers) is not { } death || headers!.ContainsKey(BrokerNames.ReasonHeader) || headers.ContainsKey("MT-Reason"))
            return null;
        var error = death.Reason switch
        {
            "delivery_limit" => deliveryLimit is { } limit ? CrashSuspects.DeliveryLimitError(limit + 1)
                : "delivery_limit: delivered too many times without an answer; the task may crash its consumer",
            "expired" => $"expired: its time to live ran out in {death.Queue} before a consumer took it (a message TTL, or a queue TTL set by an argument or a policy)",
            "maxlen" => $"maxlen: {death.Queue} was over its length limit (x-max-length or a policy) and the broker pushed the task out",
            "rejected" => $"rejected: a client that is not LaneQueue took the task from {death.Queue} and rejected it without requeue",
            var other => $"{other}: the broker dead-lettered the task from {death.Queue}",
        };
        return (death, error);
    }

    /// <summary>The task's <c>created_at</c> when its body parses (where the history read for an earlier result starts), else now.</summary>
    static DateTimeOffset CreatedAt(ReadOnlyMemory<byte> body)
    {
        try
        {
            return TaskParser.Parse(body, int.MaxValue).CreatedAt;
        }
        catch (InvalidTaskException)
        {
            return DateTimeOffset.UtcNow;
        }
    }

    static int AttemptOf(IDictionary<string, object?>? headers) =>
        int.TryParse(BrokerDeath.Text(headers, BrokerNames.AttemptHeader), out var attempt) ? Math.Max(0, attempt) : 0;
}
