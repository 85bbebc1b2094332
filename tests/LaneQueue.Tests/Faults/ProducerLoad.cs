using System.Collections.Concurrent;
using LaneQueue.Contracts;
using LaneQueue.Producer;

namespace LaneQueue.Tests.Faults;

/// <summary>
/// Producers submitting a bounded stream of tasks (round-robin over the lanes, <c>sleep</c> with a random time) while a
/// test breaks things. A submit that returns is recorded as accepted in the tally; one that throws is counted as failed
/// (the producer said so clearly: such a task is not promised) and the loop goes on with the next task.
/// </summary>
public sealed class ProducerLoad : IAsyncDisposable
{
    readonly List<LaneQueueProducer> _producers = [];
    readonly ConcurrentQueue<string> _errors = new();
    readonly ConcurrentDictionary<string, DateTime> _inFlight = new();
    readonly CancellationTokenSource _stop = new();
    int _submitted;
    int _failed;

    /// <summary>Submits the producers were asked to make (producers x tasks each).</summary>
    public int Planned { get; private set; }

    /// <summary>Submits that returned: the broker confirmed the task (accepted).</summary>
    public int Submitted => Volatile.Read(ref _submitted);

    public int Failed => Volatile.Read(ref _failed);

    public IEnumerable<string> Errors => _errors.Distinct().Take(5);

    public Task Completion { get; private set; } = Task.CompletedTask;

    public static async Task<ProducerLoad> StartAsync(string url, ResultTally tally, string prefix, int producers, int perProducer,
        TimeSpan pace, int maxTaskMs = 50, TimeSpan? submitTimeout = null, bool quorum = false)
    {
        var load = new ProducerLoad { Planned = producers * perProducer };
        for (var p = 0; p < producers; p++)
            load._producers.Add(await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = url, ClientName = $"{prefix}-producer-{p}", QuorumQueues = quorum }));
        load.Completion = Task.WhenAll(load._producers.Select((producer, p) => Task.Run(() => load.RunAsync(producer, tally, $"{prefix}-p{p}", perProducer, pace, maxTaskMs, submitTimeout ?? TimeSpan.FromSeconds(90)))));
        return load;
    }

    async Task RunAsync(LaneQueueProducer producer, ResultTally tally, string prefix, int count, TimeSpan pace, int maxTaskMs, TimeSpan submitTimeout)
    {
        var random = new Random(prefix.GetHashCode(StringComparison.Ordinal));
        for (var i = 0; i < count && !_stop.IsCancellationRequested; i++)
        {
            var lane = SessionLanes.All[i % SessionLanes.All.Count];
            var task = ExternalTask.Create($"{prefix}-{i}", lane, new { ms = random.Next(0, maxTaskMs + 1) }, "sleep");
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
            timeout.CancelAfter(submitTimeout);
            _inFlight[task.Id] = DateTime.UtcNow;
            try
            {
                await producer.SubmitTaskAsync(task, timeout.Token);
                tally.Accepted(task.Id);
                Interlocked.Increment(ref _submitted);
            }
            catch (Exception ex) when (ex is TaskRejectedException or OperationCanceledException or RabbitMQ.Client.Exceptions.AlreadyClosedException
                                           or RabbitMQ.Client.Exceptions.OperationInterruptedException or IOException)
            {
                Interlocked.Increment(ref _failed);
                _errors.Enqueue($"{ex.GetType().Name}: {ex.Message}");
            }
            finally
            {
                _inFlight.TryRemove(task.Id, out _);
            }
            if (pace > TimeSpan.Zero)
                await Task.Delay(pace);
        }
    }

    /// <summary>The submits still waiting, with how long each has waited: where a stalled load is stuck.</summary>
    public string InFlight => _inFlight.IsEmpty ? "no submit in flight"
        : string.Join(", ", _inFlight.Select(f => $"{f.Key} waiting {(DateTime.UtcNow - f.Value).TotalSeconds:0} s"));

    public override string ToString() => $"planned={Planned} confirmed={Submitted} failed={Failed}{(Failed > 0 ? " (" + string.Join(" | ", Errors) + ")" : "")}";

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        try
        {
            await Completion.WaitAsync(TimeSpan.FromSeconds(30));
        }
        catch (TimeoutException)
        {
        }
        foreach (var producer in _producers)
            await producer.DisposeAsync();
        _stop.Dispose();
    }
}
