using LaneQueue.Contracts;
using MassTransit;

namespace LaneQueue.Consumer;

/// <summary>
/// Runs instead of MassTransit's "_skipped" queue: a message no consumer took (an envelope of another message
/// type, say) is explained by the task parser and thrown, so it lands in the lane's dead-letter queue with a
/// reason instead of a queue of its own.
/// </summary>
public sealed class SkippedMessageFilter(int maxPayloadBytes) : IFilter<ReceiveContext>
{
    public Task Send(ReceiveContext context, IPipe<ReceiveContext> next)
    {
        ArgumentNullException.ThrowIfNull(context);
        TaskParser.Parse(context.Body.GetBytes(), maxPayloadBytes);
        var contentType = context.ContentType?.MediaType ?? "none";
        throw new InvalidTaskException("body", $"no consumer accepted this message (content type {contentType})");
    }

    public void Probe(ProbeContext context) => context?.CreateFilterScope("lanequeue-skipped");
}
