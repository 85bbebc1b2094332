using System.Diagnostics;
using System.Diagnostics.Metrics;

using LaneQueue.Contracts;

namespace LaneQueue.Producer;

/// <summary>
/// The names LaneQueue reports under: one <see cref="ActivitySource"/> and one meter, both called <c>LaneQueue</c>, with
/// the reference's metric names and a <c>lane</c> tag. Traces follow a task from producer to consumer through the W3C
/// <c>traceparent</c> / <c>tracestate</c> message headers, so a producer in any language that sets them is continued.
/// </summary>
internal static class LaneQueueTelemetry
{
    public const string Name = "LaneQueue";

    public const string Submitted = "commands.submitted";
    public const string Completed = "commands.completed";
    public const string Failed = "commands.failed";
    public const string Timeout = "commands.timeout";
    public const string Retried = "commands.retried";
    public const string DeadLettered = "commands.dead_lettered";
    public const string Cancelled = "commands.cancelled";
    public const string Preemptions = "commands.preempted";
    public const string LaneWaiting = "lane.waiting";
    public const string QueueDepth = "queue.depth";
    public const string QueueActive = "queue.active";
    public const string LanePaused = "lane.paused";
    public const string Latency = "command.latency_ms";
    public const string WaitTime = "command.wait_time_ms";

    public static ActivitySource Source { get; } = new(Name);

    /// <summary>The producer side's meter (the consumer creates its own through IMeterFactory, same name).</summary>
    public static Meter ProducerMeter { get; } = new(Name);

    static readonly Counter<long> SubmittedCounter = ProducerMeter.CreateCounter<long>(Submitted, "{task}", "Tasks accepted by the broker");

    public static void CountSubmitted(SessionLane lane) => SubmittedCounter.Add(1, new KeyValuePair<string, object?>("lane", lane.WireName()));

    /// <summary>Writes the current trace context into message headers (W3C trace context).</summary>
    public static void Inject(Activity? activity, IDictionary<string, object?> headers)
    {
        ArgumentNullException.ThrowIfNull(headers);
        DistributedContextPropagator.Current.Inject(activity, headers, static (carrier, key, value) =>
        {
            if (carrier is IDictionary<string, object?> dictionary)
                dictionary[key] = value;
        });
    }

    /// <summary>Reads a W3C trace context from message headers; default when there is none or it is malformed.</summary>
    public static ActivityContext Extract(Func<string, string?> header)
    {
        ArgumentNullException.ThrowIfNull(header);
        DistributedContextPropagator.Current.ExtractTraceIdAndState(header, static (carrier, name, out value, out values) =>
        {
            values = null;
            value = carrier is Func<string, string?> read ? read(name) : null;
        }, out var traceParent, out var traceState);
        return ActivityContext.TryParse(traceParent, traceState, isRemote: true, out var context) ? context : default;
    }
}
