using MassTransit;

namespace LaneQueue.Consumer;

/// <summary>
/// The message type the lane endpoints consume. It has no properties on purpose: any JSON object deserializes
/// into it, so every task reaches <see cref="LaneTaskConsumer"/>, which reads the raw body with the task parser and
/// dead-letters what breaks the contract with a reason that names the field. Its URN is the one a MassTransit
/// producer gives <c>LaneQueue.Contracts.ExternalTask</c>, so enveloped tasks are consumed too.
/// </summary>
[MessageUrn("LaneQueue.Contracts:ExternalTask", true)]
internal sealed class TaskDelivery;
