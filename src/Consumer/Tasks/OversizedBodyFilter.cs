using LaneQueue.Contracts;
using MassTransit;

namespace LaneQueue.Consumer;

/// <summary>
/// First filter of a lane endpoint's receive pipe: a body over <see cref="TaskParser.MaxBodyBytes"/> (payload limit + 64 KiB)
/// is refused by its length, before MassTransit deserializes it or the parser looks at it, and goes to the dead-letter
/// queue unchanged (answered when its id can be read). By then RabbitMQ.Client has buffered the body (it hands over whole
/// deliveries only); what keeps big bodies out of the consumer altogether is the broker's <c>max_message_size</c>
/// (infra/rabbitmq/rabbitmq.conf). Once a burst of them is over the memory they took is handed back (<see cref="MemoryTrim"/>).
/// It runs outside MassTransit's rescue, so only the move itself can throw (the message then stays in its queue).
/// </summary>
internal sealed class OversizedBodyFilter(int maxPayloadBytes, DeadLetterAnswers answers) : IFilter<ReceiveContext>
{
    public async Task Send(ReceiveContext context, IPipe<ReceiveContext> next)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(next);
        if (context.Body.Length is not { } length || TaskParser.BodySizeProblem(length, maxPayloadBytes) is not { } tooLarge)
        {
            await next.Send(context);
            return;
        }
        try
        {
            await answers.AnswerAsync(context, tooLarge);
            await ContractDeadLetters.ErrorPipe.Send(ContractDeadLetters.ForDeadLetterQueue(context, tooLarge));
        }
        finally
        {
            MemoryTrim.AfterOversizedBody();
        }
    }

    public void Probe(ProbeContext context) => context?.CreateFilterScope("lanequeue-oversized-body");
}

/// <summary>
/// Hands back to the system the memory a burst of oversized bodies took: each was copied whole into the large-object heap,
/// and a consumer that goes idle after them runs no collection that would return those pages. Once
/// <see cref="QuietPeriod"/> passes with no oversized body, one blocking, compacting, aggressive collection runs (at most
/// one per quiet period, never while bodies keep coming).
/// </summary>
internal static class MemoryTrim
{
    public static readonly TimeSpan QuietPeriod = TimeSpan.FromSeconds(2);

    static readonly Lock Gate = new();
    static Timer? _timer;

    public static void AfterOversizedBody()
    {
        lock (Gate)
        {
            _timer ??= new Timer(_ => Collect(), null, Timeout.Infinite, Timeout.Infinite);
            _timer.Change(QuietPeriod, Timeout.InfiniteTimeSpan); // restarts the quiet period
        }
    }

    static void Collect()
    {
        System.Runtime.GCSettings.LargeObjectHeapCompactionMode = System.Runtime.GCLargeObjectHeapCompactionMode.CompactOnce;
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
    }
}
