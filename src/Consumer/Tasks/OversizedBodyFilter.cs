using LaneQueue.Contracts;
using MassTransit;

namespace LaneQueue.Consumer;

/// <summary>
/// First filter of a lane endpoint's receive pipe: a body over <see cref="TaskParser.MaxBodyBytes"/> (payload limit + 64 KiB)
/// is refused by its length, before MassTransit deserializes it or the parser looks at it, and goes to the dead-letter
/// queue unchanged (answered when its id can be read). By then RabbitMQ.Client has buffered the body (it hands over whole
/// deliveries only); what keeps big bodies out of the consumer altogether is the broker's <c>max_message_size</c>
/// (infra/rabbitmq/rabbitmq.conf). It runs outside MassTransit's rescue, so only the move itself can throw (the message then
/// stays in its queue).
/// </summary>
internal sealed class OversizedBodyFilter(int maxPayloadBytes, DeadLetterAnswers answers) : IFilter<ReceiveContext>
{
    public async Task Send(ReceiveContext context, IPipe<ReceiveContext> next)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(next);
        if (context.Body.Length is not { } length || TaskParser.BodySizeProblem(length, maxPayloadBytes) is not { } tooLarge)
        {
            await next.Send(context);
            return;
        }
        await answers.AnswerAsync(context, tooLarge);
        await ContractDeadLetters.ErrorPipe.Send(ContractDeadLetters.ForDeadLetterQueue(context, tooLarge));
    }

    public void Probe(ProbeContext context) => context?.CreateFilterScope("lanequeue-oversized-body");
}
