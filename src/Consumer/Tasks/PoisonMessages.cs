using LaneQueue.Producer;
using MassTransit;

namespace LaneQueue.Consumer;

/// <summary>
/// Poison messages: a task whose handler kills the process (crash, out of memory, FailFast) never reaches LaneQueue's
/// failure path, so the broker simply redelivers it to the next consumer, which dies too. Classic queues have no
/// delivery limit: that loops until someone purges the task. With quorum queues and <see cref="LaneQueueOptions.DeliveryLimit"/>
/// the broker counts deliveries (<c>x-delivery-limit</c>) and, past the limit, dead-letters the message to the lane's
/// <c>lanequeue.&lt;lane&gt;_error</c> exchange (<c>x-dead-letter-exchange</c>), where it waits with its <c>x-death</c>
/// reason <c>delivery_limit</c> for a look and a redrive. The arguments come from <see cref="LaneQueueTopology"/>, which
/// also declares the error exchanges and queues up front (MassTransit declares them only on its first fault), so a message
/// the broker dead-letters for its delivery limit always has somewhere to go.
/// </summary>
internal static class PoisonMessages
{
    public static void Configure(IRabbitMqReceiveEndpointConfigurator endpoint, string queue, LaneQueueOptions settings)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        ArgumentNullException.ThrowIfNull(settings);
        foreach (var (key, value) in LaneQueueTopology.DeadLetterArguments(queue, settings.DeliveryLimit))
            endpoint.SetQueueArgument(key, value);
    }
}
