using LaneQueue.Contracts;
using LaneQueue.Producer;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;

namespace LaneQueue.Consumer;

/// <summary>
/// Keeps a task that crashes its consumer from taking its neighbours to the dead-letter queue (quorum queues with
/// <c>LaneQueue:DeliveryLimit</c>, where the broker counts every return of a delivery, and a crash returns all a process holds).
/// <para>
/// A <em>suspect</em> is a task that was held by a process that died: the broker's <c>x-delivery-count</c> (or the
/// <c>x-lanequeue-crashes</c> it carried into a copy LaneQueue published) is above 0. The first crash cannot be told from a
/// neighbour's, so every task held in it becomes a suspect. From then on a process holds at most one suspect at a time: a
/// suspect delivered while another one is there goes to a short hold (the delay tree, its crashes in its headers) and
/// comes back later, instead of waiting here where the next crash would count against it. So the poison task crashes alone and
/// is dead-lettered at the limit; the neighbours it crashed once keep a count of one and run.
/// </para>
/// <para>
/// A copy LaneQueue published carries the count past the broker's, so LaneQueue enforces the limit over them: a suspect whose
/// crashes are over the limit is dead-lettered with the broker's <c>delivery_limit</c> error (<see cref="DeliveryLimitError"/>).
/// </para>
/// </summary>
internal sealed class CrashSuspects(IOptions<LaneQueueOptions> options)
{
    /// <summary>How long a suspect waits in the delay tree when this process already holds one.</summary>
    public static readonly TimeSpan HoldDelay = TimeSpan.FromSeconds(2);

    /// <summary>Quiet time (no suspect on its way to the hold) a suspect waits for before it goes on, at most <see cref="SettleAtMost"/>.</summary>
    static readonly TimeSpan Quiet = TimeSpan.FromMilliseconds(100);

    static readonly TimeSpan SettleAtMost = TimeSpan.FromSeconds(5);

    int _held;
    int _holding;
    long _quietSince;

    /// <summary>Whether suspects are kept apart: a delivery limit is set and <c>LaneQueue:IsolateCrashSuspects</c> is on.</summary>
    public bool Enabled => options.Value.DeliveryLimit is not null && options.Value.IsolateCrashSuspects;

    /// <summary>The delivery limit (the broker's, and LaneQueue's over its own copies).</summary>
    public int? Limit => options.Value.DeliveryLimit;

    /// <summary>Crashes the task was held in before this delivery: the broker's count of this copy plus those it carried in.</summary>
    public static long CrashesOf(IReadOnlyBasicProperties? properties) =>
        (BrokerDeath.Number(properties?.Headers, BrokerNames.DeliveryCountHeader) ?? 0) + (BrokerDeath.Number(properties?.Headers, BrokerNames.CrashesHeader) ?? 0);

    /// <summary>The error of a task dead-lettered at the limit, by the broker or by LaneQueue (the same words).</summary>
    public static string DeliveryLimitError(long deliveries) =>
        $"delivery_limit: delivered {deliveries.ToString(System.Globalization.CultureInfo.InvariantCulture)} times without an answer; the task may crash its consumer";

    /// <summary>
    /// Takes this process's one place for a suspect, given back when the lease is disposed (the suspect ended here: ran, or
    /// went elsewhere); null when another suspect holds it (then hold this one).
    /// </summary>
    public IDisposable? TryEnter() => Interlocked.CompareExchange(ref _held, 1, 0) == 0 ? new Leased(() => Volatile.Write(ref _held, 0)) : null;

    /// <summary>
    /// A suspect delivered while another held the place is on its way to the hold (until its copy is confirmed): dispose when done.
    /// </summary>
    public IDisposable Holding()
    {
        Interlocked.Increment(ref _holding);
        return new Leased(() =>
        {
            Interlocked.Exchange(ref _quietSince, Environment.TickCount64);
            Interlocked.Decrement(ref _holding);
        });
    }

    /// <summary>
    /// The suspect that took the place waits until the others delivered with it (after a restart the broker sends the tasks of
    /// a crash together) are on their way to the hold and acked: should it crash this process, they are not held here.
    /// </summary>
    public async Task SettleAsync(CancellationToken cancellationToken)
    {
        Interlocked.Exchange(ref _quietSince, Environment.TickCount64);
        var until = Environment.TickCount64 + (long)SettleAtMost.TotalMilliseconds;
        while (Environment.TickCount64 < until
               && (Volatile.Read(ref _holding) > 0 || Environment.TickCount64 - Interlocked.Read(ref _quietSince) < (long)Quiet.TotalMilliseconds))
            await Task.Delay(20, cancellationToken);
    }

    sealed class Leased(Action end) : IDisposable
    {
        int _ended;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _ended, 1) == 0)
                end();
        }
    }
}
