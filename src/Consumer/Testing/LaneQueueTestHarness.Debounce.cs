using LaneQueue.Contracts;

namespace LaneQueue.Consumer.Testing;

/// <summary>
/// The harness's de-duplication keys in debounce mode (<c>dedup_mode: "debounce"</c>), on its clock: a task is recorded as its
/// key's latest when it is submitted (the consumer records it when it first reads it from its lane), and a task that comes
/// due while another one is recorded is answered <c>duplicate</c> naming it, as <see cref="DedupClaims"/> words it. The
/// record lasts the key's window from the latest submit.
/// </summary>
public sealed partial class LaneQueueTestHarness
{
    readonly Dictionary<(string Key, long WindowMs), (string Latest, DateTimeOffset Until)> _debounceLatest = [];

    /// <summary>At submit: a debounced task becomes its key's latest (<see cref="DedupClaims.RecordLatestAsync"/>).</summary>
    void RecordLatestLocked(ExternalTask task)
    {
        if (task.Debounced)
        {
            var window = task.DedupWindowOrDefaultMs;
            _debounceLatest[(task.DedupKey!, window)] = (task.Id, _time.GetUtcNow().AddMilliseconds(window));
        }
    }

    /// <summary>
    /// When a task with a key comes due: why it does not run (held by another task in once mode, replaced by a later task in
    /// debounce mode), or null when it runs.
    /// </summary>
    string? DedupErrorLocked(ExternalTask task)
    {
        if (task.DedupKey is not { } key)
            return null;
        var window = task.DedupWindowOrDefaultMs;
        if (!task.Debounced)
            return HeldKeyLocked(key, window, task.Id);
        return _debounceLatest.TryGetValue((key, window), out var latest) && latest.Until > _time.GetUtcNow() && latest.Latest != task.Id
            ? DedupClaims.ReplacedError(key, latest.Latest)
            : null;
    }
}
