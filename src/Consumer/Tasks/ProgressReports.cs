using System.Text.Json;
using LaneQueue.Contracts;

namespace LaneQueue.Consumer;

/// <summary>
/// One run's progress reports (<see cref="TaskContext.ReportProgressAsync(object?)"/>), throttled: at most one
/// <c>command.progress</c> event per <see cref="Interval"/>. A report that comes sooner waits and is replaced by any later
/// one, so the latest value always goes out: at the end of the interval, or at once when the run ends
/// (<see cref="DisposeAsync"/>, before the run's result and terminal event). Events are best effort, like every
/// lifecycle event: a report never fails or slows the handler on the broker's account.
/// </summary>
internal sealed class ProgressReports(Func<JsonElement, Task> publish, TimeProvider time) : IAsyncDisposable
{
    /// <summary>Shortest time between two progress events of one run (10 a second at most).</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(100);

    readonly Lock _lock = new();
    readonly CancellationTokenSource _ended = new();
    JsonElement? _pending;
    long _lastSent;
    bool _scheduled;
    bool _disposed;
    Task _sending = Task.CompletedTask;

    /// <summary>Progress events sent (reports replaced by a later one inside an interval are not).</summary>
    public int Sent { get; private set; }

    /// <summary>
    /// Queues <paramref name="value"/> (checked by <see cref="Json"/>); the returned task ends when it is published, or at
    /// once when it waits for the interval to pass.
    /// </summary>
    public Task ReportAsync(JsonElement value)
    {
        lock (_lock)
        {
            if (_disposed)
                return Task.CompletedTask;
            _pending = value;
            if (_scheduled)
                return Task.CompletedTask; // the send already waiting takes the latest value
            _scheduled = true;
            var wait = _lastSent == 0 ? TimeSpan.Zero : Interval - time.GetElapsedTime(_lastSent);
            _sending = SendAsync(_sending, wait);
            return wait > TimeSpan.Zero ? Task.CompletedTask : _sending;
        }
    }

    async Task SendAsync(Task previous, TimeSpan wait)
    {
        await previous;
        if (wait > TimeSpan.Zero)
        {
            try
            {
                await Task.Delay(wait, time, _ended.Token);
            }
            catch (OperationCanceledException)
            {
                // the run ended: send the latest now
            }
        }
        JsonElement value;
        lock (_lock)
        {
            value = _pending!.Value;
            _pending = null;
            _scheduled = false;
            _lastSent = time.GetTimestamp();
            Sent++;
        }
        try
        {
            await publish(value);
        }
        catch (Exception)
        {
            // best effort, as lifecycle events are
        }
    }

    /// <summary>
    /// A report's JSON: any value that serializes (System.Text.Json, camelCase) to at most
    /// <see cref="TaskEvent.ProgressMaxBytes"/> bytes.
    /// </summary>
    /// <exception cref="ArgumentException">Larger than that, or not serializable; names <c>progress</c>.</exception>
    public static JsonElement Json(object? value)
    {
        byte[] bytes;
        try
        {
            bytes = value is JsonElement element ? JsonSerializer.SerializeToUtf8Bytes(element, TaskJson.Options) : JsonSerializer.SerializeToUtf8Bytes(value, TaskJson.Options);
        }
        catch (Exception ex) when (ex is NotSupportedException or JsonException or InvalidOperationException or ArgumentException)
        {
            throw new ArgumentException($"progress: cannot be written as JSON ({ex.Message})", nameof(value), ex);
        }
        if (bytes.Length > TaskEvent.ProgressMaxBytes)
            throw new ArgumentException($"progress: {bytes.Length} bytes of JSON, at most {TaskEvent.ProgressMaxBytes}; report a percent and a short message", nameof(value));
        return JsonDocument.Parse(bytes).RootElement.Clone();
    }

    /// <summary>The report <c>{"percent": p, "message": m}</c> (message left out when null).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="percent"/> is not a number from 0 to 100.</exception>
    public static JsonElement Percent(double percent, string? message)
    {
        if (!double.IsFinite(percent) || percent is < 0 or > 100)
            throw new ArgumentOutOfRangeException(nameof(percent), percent, "progress: percent must be a number from 0 to 100");
        return Json(message is null ? new Dictionary<string, object> { ["percent"] = percent } : new Dictionary<string, object> { ["percent"] = percent, ["message"] = message });
    }

    /// <summary>Sends the latest report at once if one waits, and ignores reports from now on.</summary>
    public async ValueTask DisposeAsync()
    {
        Task sending;
        lock (_lock)
        {
            if (_disposed)
                return;
            _disposed = true;
            sending = _sending;
        }
        await _ended.CancelAsync();
        await sending;
        _ended.Dispose();
    }
}
