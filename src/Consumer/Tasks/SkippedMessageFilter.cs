using System.Collections;
using System.Text;
using System.Text.Json;
using LaneQueue.Contracts;
using MassTransit;
using MassTransit.Middleware;
using MassTransit.Middleware.Rescue;
using RabbitMQ.Client;

namespace LaneQueue.Consumer;

/// <summary>
/// Sends every message that cannot be a task to the lane's dead-letter queue (<c>lanequeue.&lt;lane&gt;_error</c>) with
/// the contract's reason in <c>MT-Fault-Message</c>, whichever stage noticed: MassTransit's deserializer (not JSON, not
/// an object, not UTF-8), no consumer taking it (an envelope of another message type), or the task consumer.
/// </summary>
internal static class ContractDeadLetters
{
    const string EnvelopeContentType = "application/vnd.masstransit+json";

    /// <summary>
    /// Replaces MassTransit's dead-letter (<c>_skipped</c>) and error pipes of a lane endpoint, and puts the oversized-body
    /// check in front of everything else; each path answers a message with a readable id through <paramref name="answers"/>.
    /// </summary>
    public static void UseContractDeadLetters(this IReceiveEndpointConfigurator endpoint, int maxPayloadBytes, DeadLetterAnswers answers)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        endpoint.ConfigureReceive(r => r.UseFilter(new OversizedBodyFilter(maxPayloadBytes, answers)));
        endpoint.ConfigureDeadLetter(d => d.UseFilter(new SkippedMessageFilter(maxPayloadBytes, answers)));
        endpoint.ConfigureError(e =>
        {
            e.UseFilter(new ContractReasonFilter(maxPayloadBytes, answers));
            // MassTransit's own error pipe, as it builds it when none is configured.
            e.UseFilter(new GenerateFaultFilter());
            e.UseFilter(new ErrorTransportFilter());
        });
    }

    /// <summary>MassTransit's error pipe (fault, then the move to the dead-letter queue), for filters outside its rescue.</summary>
    public static readonly IPipe<ExceptionReceiveContext> ErrorPipe = Pipe.New<ExceptionReceiveContext>(p =>
    {
        p.UseFilter(new GenerateFaultFilter());
        p.UseFilter(new ErrorTransportFilter());
    });

    /// <summary>Why this message cannot be a task, or null when its body is a valid task.</summary>
    public static InvalidTaskException? Explain(ReceiveContext context, int maxPayloadBytes)
    {
        ArgumentNullException.ThrowIfNull(context);
        var body = context.Body.GetBytes();
        try
        {
            TaskParser.Parse(body, maxPayloadBytes);
        }
        catch (InvalidTaskException ex)
        {
            return ex;
        }
        if (context.ContentType?.MediaType == EnvelopeContentType && !IsEnvelope(body))
            return new InvalidTaskException("body", $"sent as {EnvelopeContentType} but is not a MassTransit envelope (messageType + message); send a plain task as application/json");
        return null;
    }

    static bool IsEnvelope(byte[] body)
    {
        using var document = JsonDocument.Parse(body);
        return document.RootElement.TryGetProperty("messageType", out _) && document.RootElement.TryGetProperty("message", out _);
    }

    /// <summary>Headers (AMQP-encoded) a dead-letter copy keeps; the rest make room for MassTransit's fault headers.</summary>
    public const int MaxDeadLetterHeaderBytes = 64 * 1024;

    /// <summary>Names the dropped headers and their sizes on a dead-letter copy.</summary>
    public const string DroppedHeadersHeader = "x-lanequeue-dropped-headers";

    /// <summary>
    /// What the error pipe moves to the dead-letter queue: the message with <paramref name="exception"/> as its fault.
    /// The move copies the message's AMQP headers and adds MassTransit's fault headers; all of them must fit one AMQP
    /// frame (128 KiB), or the broker closes the consumer's connection, the message goes back to its queue and comes
    /// round again for ever. So headers past <see cref="MaxDeadLetterHeaderBytes"/> are dropped from the copy, largest
    /// first, and named in <see cref="DroppedHeadersHeader"/>.
    /// </summary>
    public static ExceptionReceiveContext ForDeadLetterQueue(ReceiveContext context, Exception exception)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (context.TryGetPayload(out RabbitMqBasicConsumeContext? delivery) && delivery.Properties.Headers is { } headers
            && headers.Sum(h => EntryBytes(h.Key, h.Value)) > MaxDeadLetterHeaderBytes)
        {
            var kept = new Dictionary<string, object?>(headers, StringComparer.Ordinal);
            var dropped = new List<string>();
            foreach (var (name, value) in headers.OrderByDescending(h => EntryBytes(h.Key, h.Value)))
            {
                if (kept.Sum(h => EntryBytes(h.Key, h.Value)) <= MaxDeadLetterHeaderBytes)
                    break;
                kept.Remove(name);
                dropped.Add($"{(name.Length > 100 ? name[..100] + "…" : name)} ({EntryBytes(name, value)} bytes)");
            }
            kept[DroppedHeadersHeader] = string.Join(", ", dropped.Take(50));
            var properties = new BasicProperties(delivery.Properties) { Headers = kept };
            return new TrimmedHeadersContext(context, exception, new TrimmedDelivery(delivery, properties));
        }
        return context is ExceptionReceiveContext same && ReferenceEquals(same.Exception, exception) ? same : new RescueExceptionReceiveContext(context, exception);
    }

    /// <summary>Size of a header as AMQP encodes it (name, type, value), near enough.</summary>
    static long EntryBytes(string name, object? value) => 2 + Encoding.UTF8.GetByteCount(name) + ValueBytes(value);

    static long ValueBytes(object? value) => value switch
    {
        null => 0,
        byte[] bytes => 4 + bytes.Length,
        string text => 4 + Encoding.UTF8.GetByteCount(text),
        IDictionary<string, object?> table => 4 + table.Sum(e => EntryBytes(e.Key, e.Value)),
        IEnumerable list => 4 + list.Cast<object?>().Sum(item => 1 + ValueBytes(item)),
        _ => 9,
    };

    sealed class TrimmedHeadersContext(ReceiveContext context, Exception exception, RabbitMqBasicConsumeContext delivery)
        : RescueExceptionReceiveContext(context, exception)
    {
        public override bool TryGetPayload<T>(out T payload) where T : class
        {
            if (typeof(T) == typeof(RabbitMqBasicConsumeContext))
            {
                payload = (T)delivery;
                return true;
            }
            return base.TryGetPayload(out payload);
        }
    }

    sealed class TrimmedDelivery(RabbitMqBasicConsumeContext delivery, IReadOnlyBasicProperties properties) : RabbitMqBasicConsumeContext
    {
        public string Exchange => delivery.Exchange;
        public string? RoutingKey => delivery.RoutingKey;
        public string ConsumerTag => delivery.ConsumerTag;
        public ulong DeliveryTag => delivery.DeliveryTag;
        public IReadOnlyBasicProperties Properties => properties;
    }
}

/// <summary>
/// Runs instead of MassTransit's "_skipped" queue: a message no consumer took (an envelope of another message type,
/// say) goes to the lane's dead-letter queue with a reason, answered when its id can be read. It must not throw: this
/// pipe runs outside MassTransit's rescue, and a throw there sends the message back to the queue, to be redelivered at once,
/// for ever.
/// </summary>
internal sealed class SkippedMessageFilter(int maxPayloadBytes, DeadLetterAnswers answers) : IFilter<ReceiveContext>
{
    public async Task Send(ReceiveContext context, IPipe<ReceiveContext> next)
    {
        ArgumentNullException.ThrowIfNull(context);
        var reason = ContractDeadLetters.Explain(context, maxPayloadBytes)
            ?? new InvalidTaskException("body", $"no consumer accepted this message (content type {context.ContentType?.MediaType ?? "none"}); a MassTransit envelope must carry urn:message:LaneQueue.Contracts:ExternalTask");
        await answers.AnswerAsync(context, reason);
        await ContractDeadLetters.ErrorPipe.Send(ContractDeadLetters.ForDeadLetterQueue(context, reason));
    }

    public void Probe(ProbeContext context) => context?.CreateFilterScope("lanequeue-skipped");
}

/// <summary>
/// First filter of the error pipe. When MassTransit itself failed on a message (its deserializer, say), the fault carries
/// the contract's reason (<c>body: not valid JSON</c>, <c>body: expected a JSON object, got null</c>) instead of a
/// serializer's internals; a run the consumer had to abandon gets <c>consumer: ...</c>; faults the task consumer answered
/// itself (a handler's failure) keep theirs. A message with a readable id that nobody answered yet gets its result and
/// event here (<see cref="DeadLetterAnswers"/>). Either way oversized headers are cut from the dead-letter copy
/// (<see cref="ContractDeadLetters.ForDeadLetterQueue"/>).
/// </summary>
internal sealed class ContractReasonFilter(int maxPayloadBytes, DeadLetterAnswers answers) : IFilter<ExceptionReceiveContext>
{
    public async Task Send(ExceptionReceiveContext context, IPipe<ExceptionReceiveContext> next)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(next);
        var reason = context.Exception;
        if (!DeadLetterAnswers.IsAnswered(context))
        {
            reason = context.Exception as InvalidTaskException ?? ContractDeadLetters.Explain(context, maxPayloadBytes)
                ?? (Exception)new TaskDeadLetteredException(TaskErrors.ConsumerProblem(context.Exception));
            await answers.AnswerAsync(context, reason);
        }
        await next.Send(ContractDeadLetters.ForDeadLetterQueue(context, reason));
    }

    public void Probe(ProbeContext context) => context?.CreateFilterScope("lanequeue-contract-reason");
}
