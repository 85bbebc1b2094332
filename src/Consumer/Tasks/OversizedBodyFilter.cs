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
    /// <summary>
    /// Oversized bodies are moved one at a time in the process: RabbitMQ.Client copies a published body whole into a buffer
    /// of its size from <c>ArrayPool&lt;byte&gt;.Shared</c>, which keeps the buffers it is given back; moved side by side, a
    /// burst left one such buffer per delivery in flight behind (225 MiB after 40 x 5 MiB with a lane window of 16).
    /// </summary>
    static readonly SemaphoreSlim OneAtATime = new(1, 1);

    public async Task Send(ReceiveContext context, IPipe<ReceiveContext> next)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(next);
        if (context.Body.Length is not { } length || TaskParser.BodySizeProblem(length, maxPayloadBytes) is not { } tooLarge)
        {
            await next.Send(context);
            return;
        }
        await OneAtATime.WaitAsync(context.CancellationToken);
        try
        {
            await answers.AnswerAsync(context, tooLarge);
            await ContractDeadLetters.ErrorPipe.Send(ContractDeadLetters.ForDeadLetterQueue(context, tooLarge));
        }
        finally
        {
            OneAtATime.Release();
            MemoryTrim.AfterOversizedBody(length, TaskParser.MaxBodyBytes(maxPayloadBytes));
        }
    }

    public void Probe(ProbeContext context) => context?.CreateFilterScope("lanequeue-oversized-body");
}

/// <summary>
/// Hands back to the system the memory a burst of oversized bodies took. Each was copied whole into the large-object heap,
/// and a consumer that goes idle after them runs no collection that would return those pages; RabbitMQ.Client read each
/// whole into a buffer from <c>ArrayPool&lt;byte&gt;.Shared</c> (a 5 MiB body takes an 8 MiB array) and copied each into
/// another to move it to the dead-letter queue, and the shared pool keeps what it is given back (up to 32 arrays of a size
/// per core; it trims them only after a minute, or under high memory pressure). Once <see cref="QuietPeriod"/> passes with
/// no oversized body, the pool's arrays of the sizes such bodies took (from just over the body limit up to the largest
/// body seen) are taken out of it and dropped, then one blocking, compacting, aggressive collection runs (at most one per
/// quiet period, never while bodies keep coming). Measured by <c>OversizedBodyMemoryTests</c> with a lane window of 16
/// (<c>LaneQueue:PrefetchPerLimit=4</c>): 225 MiB kept after 40 x 5 MiB without either step, 131 MiB with the moves one at
/// a time only; with the pool limited to one array per size and core (a run-time setting for a test only), 2 MiB.
/// </summary>
internal static class MemoryTrim
{
    public static readonly TimeSpan QuietPeriod = TimeSpan.FromSeconds(2);

    static readonly Lock Gate = new();
    static Timer? _timer;
    static long _smallest = long.MaxValue;
    static long _largest;

    /// <summary>An oversized body of <paramref name="length"/> bytes went through (the limit: <paramref name="limit"/> bytes).</summary>
    public static void AfterOversizedBody(long length, long limit)
    {
        lock (Gate)
        {
            _smallest = Math.Min(_smallest, limit + 1);
            _largest = Math.Max(_largest, length);
            _timer ??= new Timer(_ => Collect(), null, Timeout.Infinite, Timeout.Infinite);
            _timer.Change(QuietPeriod, Timeout.InfiniteTimeSpan); // restarts the quiet period
        }
    }

    static void Collect()
    {
        long smallest, largest;
        lock (Gate)
        {
            (smallest, largest) = (_smallest, _largest);
            (_smallest, _largest) = (long.MaxValue, 0);
        }
        if (largest > 0)
            DrainSharedPool(smallest, largest + 1024 * 1024); // the move's buffer holds the body and its frames' headers
        System.Runtime.GCSettings.LargeObjectHeapCompactionMode = System.Runtime.GCLargeObjectHeapCompactionMode.CompactOnce;
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
    }

    /// <summary>
    /// Takes the shared pool's idle arrays of every size from <paramref name="from"/> to <paramref name="to"/> bytes out of it
    /// and drops them: a size is done when the pool hands out a new array instead of one it kept (this thread allocated it).
    /// Arrays rented by others are not the pool's to give: they go back to it and stay, as any array would.
    /// </summary>
    static void DrainSharedPool(long from, long to)
    {
        var last = (long)System.Numerics.BitOperations.RoundUpToPowerOf2((ulong)Math.Max(to, 16)); // the pool's arrays come in powers of 2
        for (var size = (long)System.Numerics.BitOperations.RoundUpToPowerOf2((ulong)Math.Max(from, 16)); size <= last && size <= Array.MaxLength; size *= 2)
        {
            while (true)
            {
                var before = GC.GetAllocatedBytesForCurrentThread();
                _ = System.Buffers.ArrayPool<byte>.Shared.Rent((int)size);
                if (GC.GetAllocatedBytesForCurrentThread() - before >= size)
                    break; // a new array: none of this size is left in the pool
            }
        }
    }
}
