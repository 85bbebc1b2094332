using LaneQueue.Contracts;
using MassTransit;

namespace LaneQueue.Consumer;

/// <summary>
/// First in a lane endpoint's receive pipe (queue-per-lane topology): from the moment the broker's delivery reaches this
/// process until its task waits for a slot, <see cref="LaneSlots"/> counts it as arriving in its lane and holds a free slot
/// for it rather than give the slot to a lower lane. Without it a short task's successor, already delivered but still
/// being deserialized and checked, lost its slot to the generate backlog in the gap. The task consumer ends the arrival
/// when the task waits (<see cref="Of"/>); the filter ends it in any case once the delivery leaves the pipe.
/// </summary>
internal sealed class ArrivalFilter(SessionLane lane, LaneSlots slots) : IFilter<ReceiveContext>
{
    sealed record Arrival(IDisposable Handle);

    public async Task Send(ReceiveContext context, IPipe<ReceiveContext> next)
    {
        // Where the delivery sits in its queue's order: the queue and the broker's delivery tag on this endpoint's channel.
        LaneScheduler.DeliveryPlace? place = context.TryGetPayload<RabbitMqBasicConsumeContext>(out var basic)
            ? new(BrokerHost.QueueOf(context.InputAddress), basic.DeliveryTag)
            : null;
        using var arrival = slots.Arriving(lane, place);
        context.GetOrAddPayload(() => new Arrival(arrival));
        await next.Send(context);
    }

    /// <summary>The arrival this filter began for the delivery, or null (another topology, or no filter).</summary>
    public static IDisposable? Of(ReceiveContext context) => context?.TryGetPayload<Arrival>(out var arrival) == true ? arrival.Handle : null;

    public void Probe(ProbeContext context) => context.CreateFilterScope("laneArrival");
}
