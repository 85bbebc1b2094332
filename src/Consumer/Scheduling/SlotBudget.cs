using LaneQueue.Contracts;
using Microsoft.Extensions.Options;

namespace LaneQueue.Consumer;

/// <summary>
/// The process-wide budget of running tasks, on top of each lane's own limit. When several lanes wait for a
/// slot, the highest lane gets the next one, so capacity a paused lane frees goes to the higher lanes.
/// </summary>
internal sealed class SlotBudget
{
    readonly object _lock = new();
    readonly PriorityQueue<TaskCompletionSource<IDisposable>, (int Lane, long Order)> _waiting = new();
    long _order;
    int _free;

    public SlotBudget(IOptions<LaneQueueOptions> options)
        : this(options?.Value.SlotBudget ?? throw new ArgumentNullException(nameof(options))) { }

    public SlotBudget(int slots)
    {
        Capacity = slots;
        _free = slots;
    }

    public int Capacity { get; }

    public int InUse
    {
        get
        {
            lock (_lock)
                return Capacity - _free;
        }
    }

    public int Waiting
    {
        get
        {
            lock (_lock)
                return _waiting.Count;
        }
    }

    /// <summary>Waits for a slot (the returned task is already complete when one is free); dispose the handle to give it back.</summary>
    public Task<IDisposable> AcquireAsync(SessionLane lane, CancellationToken cancellationToken = default)
    {
        TaskCompletionSource<IDisposable> waiter;
        lock (_lock)
        {
            if (_free > 0 && _waiting.Count == 0)
            {
                _free--;
                return Task.FromResult<IDisposable>(new Slot(this));
            }
            waiter = new TaskCompletionSource<IDisposable>(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiting.Enqueue(waiter, ((int)lane, _order++));
        }
        if (cancellationToken.CanBeCanceled)
        {
            cancellationToken.Register(() =>
            {
                if (waiter.TrySetCanceled(cancellationToken))
                    return;
            });
        }
        return waiter.Task;
    }

    void Release()
    {
        lock (_lock)
        {
            while (_waiting.TryDequeue(out var next, out _))
            {
                if (next.TrySetResult(new Slot(this)))
                    return;
            }
            _free++;
        }
    }

    sealed class Slot(SlotBudget budget) : IDisposable
    {
        int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
                budget.Release();
        }
    }
}
