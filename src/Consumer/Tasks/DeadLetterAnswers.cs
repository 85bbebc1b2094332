using System.Security.Cryptography;
using LaneQueue.Contracts;
using MassTransit;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace LaneQueue.Consumer;

/// <summary>
/// The answer to a message on its way to the dead-letter queue that nobody has answered yet: when its id can be read
/// (<see cref="TaskIdentity"/>), a <c>failed</c> result with the reason as error and a <c>command.dead_lettered</c> event,
/// through <see cref="TaskOutcome.RefusedAsync"/>; without a readable id, nothing (there is no routing key for a result).
/// Every dead-letter path calls it (the error pipe, MassTransit's skipped pipe, the oversized-body filter), and a delivery the
/// task consumer answered itself (<see cref="MarkAnswered"/>) is skipped, so each delivery gets one answer at most.
/// </summary>
internal sealed class DeadLetterAnswers(TaskOutcome outcome, TaskLedger ledger, IOptions<LaneQueueOptions> options, ILogger<DeadLetterAnswers> logger)
{
    /// <summary>
    /// Says on the delivery that its result and terminal event are out, and remembers its body for a redelivered copy; with
    /// the <paramref name="reason"/> it is dead-lettered for when the task consumer failed it itself (after a run).
    /// </summary>
    public void MarkAnswered(ReceiveContext context, string? reason)
    {
        ArgumentNullException.ThrowIfNull(context);
        context.GetOrAddPayload(() => new Answered());
        ledger.RecordAnswered(Digest(context), reason);
    }

    /// <summary>Whether the delivery's result and terminal event are out already.</summary>
    public static bool IsAnswered(ReceiveContext context) => context?.TryGetPayload<Answered>(out _) == true;

    /// <summary>
    /// Whether this delivery is a redelivered copy of a message this consumer answered within <see cref="TaskLedger.Window"/>
    /// (and the reason the consumer dead-lettered it for, when it failed it after a run). Only redelivered deliveries are
    /// hashed: a first delivery is never a copy.
    /// </summary>
    public bool AnsweredBefore(ReceiveContext context, out string? reason)
    {
        ArgumentNullException.ThrowIfNull(context);
        reason = null;
        return context.Redelivered && ledger.WasAnswered(Digest(context), out reason);
    }

    /// <summary>
    /// Publishes the answer of a message being dead-lettered for <paramref name="reason"/>, unless the delivery was answered
    /// already, is a redelivered copy of one answered before, or has no readable id. Never throws: a result that cannot be
    /// published (broker unreachable past the recovery time) is logged, and the message is dead-lettered all the same.
    /// </summary>
    public async Task AnswerAsync(ReceiveContext context, Exception reason)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(reason);
        if (IsAnswered(context))
            return;
        var identity = TaskIdentity.Read(context.Body.GetBytes());
        if (identity is null)
            return;
        var lane = identity.Lane ?? DeliveryLane(context);
        if (lane is null)
            return;
        if (AnsweredBefore(context, out _))
        {
            Log.AnswerSkipped(logger, identity.Id, "a redelivered copy of a message this consumer answered already");
            return;
        }
        try
        {
            await outcome.RefusedAsync(identity, lane.Value, AttemptOf(context), reason.Message);
            MarkAnswered(context, null); // a redelivered copy is refused again by the same path, for the same reason
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            Log.AnswerFailed(logger, identity.Id, ex.Message);
        }
    }

    /// <summary>Retries before this delivery, from <see cref="BrokerNames.AttemptHeader"/> (0 on the first).</summary>
    public static int AttemptOf(ReceiveContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return context.TransportHeaders.TryGetHeader(BrokerNames.AttemptHeader, out var value) && value is not null
            && int.TryParse(value is byte[] bytes ? System.Text.Encoding.UTF8.GetString(bytes) : value.ToString(), out var attempt)
            ? Math.Max(0, attempt)
            : 0;
    }

    /// <summary>The lane the message travelled in: its routing key (a lane, or the broker would not have routed it), else its queue.</summary>
    SessionLane? DeliveryLane(ReceiveContext context)
    {
        if (context.TryGetPayload(out RabbitMqBasicConsumeContext? delivery) && SessionLanes.TryParse(delivery.RoutingKey, out var routed))
            return routed;
        var queue = BrokerHost.QueueOf(context.InputAddress);
        return options.Value.Topology == LaneTopology.QueuePerLane ? BrokerNames.LaneOfQueue(queue) : null;
    }

    /// <summary>What tells a copy of a message from another message with the same id: the hash of the body (128 bits of SHA-256).</summary>
    static UInt128 Digest(ReceiveContext context) =>
        System.Buffers.Binary.BinaryPrimitives.ReadUInt128LittleEndian(SHA256.HashData(context.Body.GetBytes()));

    /// <summary>Payload of a delivery whose result and terminal event are published.</summary>
    sealed class Answered;
}
