using System.Globalization;
using System.Text.RegularExpressions;
using LaneQueue.Contracts;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;

namespace LaneQueue.Producer;

/// <summary>
/// The broker's lanes are not what this process would declare: an existing queue has other arguments (the broker answers
/// PRECONDITION_FAILED, 406), or the vhost has the other topology. The message names the <c>LaneQueue:</c> setting and
/// both values; the producer turns it into a <see cref="TaskRejectedException"/>, the consumer into a start failure.
/// </summary>
internal sealed partial class TopologyMismatchException : Exception
{
    public TopologyMismatchException() { }

    public TopologyMismatchException(string message) : base(message) { }

    public TopologyMismatchException(string message, Exception innerException) : base(message, innerException) { }

    /// <summary>The setting that differs most fundamentally (e.g. <c>LaneQueue:QuorumQueues</c>), null when no LaneQueue setting explains it.</summary>
    public string? Setting { get; init; }

    /// <summary>An argument that differs: its value here and on the broker (null: not set).</summary>
    internal sealed record Difference(string Argument, string? Here, string? OnBroker, string? BrokerType);

    public static TopologyMismatchException OtherTopology(LaneTopology here, string existingQueue)
    {
        var theirs = here == LaneTopology.PriorityQueue ? LaneTopology.QueuePerLane : LaneTopology.PriorityQueue;
        return new TopologyMismatchException(
            $"LaneQueue:Topology does not match the broker: {here} here, but queue '{existingQueue}' of the {theirs} topology exists " +
            $"in this vhost. Set LaneQueue:Topology={theirs} on every producer and consumer of the vhost, or delete the {theirs} " +
            "queues (their tasks are lost) to switch.")
        { Setting = "LaneQueue:Topology" };
    }

    /// <summary>A session shard queue past this process's count exists: the vhost's lane is sharded more than here.</summary>
    public static TopologyMismatchException Shards(SessionLane lane, int here, string existingQueue) =>
        new($"LaneQueue:SessionShards:{lane.WireName()} does not match the broker: {here} here, but queue '{existingQueue}' exists " +
            $"in this vhost. Set the same LaneQueue:SessionShards:{lane.WireName()} on every producer and consumer of the vhost; to shard " +
            "less, stop the producers, let the consumers empty the extra shard queues, then delete them.")
        { Setting = $"LaneQueue:SessionShards:{lane.WireName()}" };

    /// <summary>
    /// The task history stream exists with another retention: names <c>LaneQueue:HistoryMaxAge</c> and/or <c>HistoryMaxBytes</c>
    /// with both values (every difference, found as <see cref="DiagnoseAsync"/> does).
    /// </summary>
    public static async Task<TopologyMismatchException> HistoryAsync(
        IConnection connection, string stream, IReadOnlyDictionary<string, object?> arguments, OperationInterruptedException refusal, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(refusal);
        var reply = Reply(refusal);
        var differences = await DifferencesAsync(connection, stream, arguments, reply, cancellationToken);
        static string? Setting(string argument) => argument switch
        {
            "x-max-age" => "LaneQueue:HistoryMaxAge",
            "x-max-length-bytes" => "LaneQueue:HistoryMaxBytes",
            _ => null,
        };
        var named = differences.Where(d => Setting(d.Argument) is not null).ToList();
        if (named.Count == 0)
        {
            return new TopologyMismatchException(
                $"the existing stream '{stream}' was declared with other arguments than LaneQueue declares: {reply}. Set LaneQueue:HistoryMaxAge " +
                "and HistoryMaxBytes as the rest of the fleet has them, or delete the stream (the task history is lost).", refusal)
            { Setting = "LaneQueue:HistoryMaxAge" };
        }
        var settings = named.Select(d => Setting(d.Argument)!).ToList();
        return new TopologyMismatchException(
            $"{string.Join(" and ", settings)} {(settings.Count == 1 ? "does" : "do")} not match the existing stream '{stream}' (" +
            string.Join("; ", named.Select(d => $"{d.Argument}: {d.Here ?? "none"} here, {d.OnBroker ?? "none"} on the broker")) +
            "): the broker keeps a stream's arguments and refuses to declare it differently. Set " +
            string.Join(", ", named.Select(d => $"{Setting(d.Argument)}={d.OnBroker}")) +
            $" on every producer and consumer of this vhost, or delete the stream (the task history is lost) to change it. Broker: {reply}", refusal)
        { Setting = settings[0] };
    }

    public static TopologyMismatchException Exchange(string exchange, OperationInterruptedException refusal) =>
        new($"the exchange '{exchange}' exists with other settings than LaneQueue declares (durable fanout): {Reply(refusal)}. " +
            "Delete it or use another vhost.", refusal);

    /// <summary>
    /// Explains a refused queue declaration. The broker names only the first argument that differs, so this declares the
    /// queue again (on fresh channels) with that argument as the broker has it, until the declaration passes: the queue
    /// exists, so each try either fails or changes nothing. The message then lists every difference.
    /// </summary>
    public static async Task<TopologyMismatchException> DiagnoseAsync(
        IConnection connection, string queue, IReadOnlyDictionary<string, object?> arguments, OperationInterruptedException refusal, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(arguments);
        ArgumentNullException.ThrowIfNull(refusal);
        var reply = Reply(refusal);
        if (InvalidArgument().Match(reply) is { Success: true } invalid)
            return Invalid(queue, arguments, invalid.Groups["arg"].Value, reply, refusal);
        return Describe(queue, await DifferencesAsync(connection, queue, arguments, reply, cancellationToken), reply, refusal);
    }

    /// <summary>Every argument that differs, starting from the broker's first (<paramref name="reply"/>): see <see cref="DiagnoseAsync"/>.</summary>
    static async Task<List<Difference>> DifferencesAsync(
        IConnection connection, string queue, IReadOnlyDictionary<string, object?> arguments, string reply, CancellationToken cancellationToken)
    {
        var differences = new List<Difference>();
        var trial = new Dictionary<string, object?>(arguments);
        var current = reply;
        while (differences.Count < 8 && Parse(current, arguments) is { } difference && differences.All(d => d.Argument != difference.Argument))
        {
            differences.Add(difference);
            if (difference.OnBroker is null)
                trial.Remove(difference.Argument);
            else
                trial[difference.Argument] = BrokerValue(difference, arguments.GetValueOrDefault(difference.Argument));
            current = await RedeclareAsync(connection, queue, trial, cancellationToken);
            if (current is null)
                break;
        }
        return differences;
    }

    /// <summary>The reply of a declaration with <paramref name="arguments"/>: null when it passed (or could not be tried).</summary>
    static async Task<string?> RedeclareAsync(IConnection connection, string queue, Dictionary<string, object?> arguments, CancellationToken cancellationToken)
    {
        try
        {
            await using var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
            await channel.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false, arguments: arguments, cancellationToken: cancellationToken);
            return null;
        }
        catch (OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == 406)
        {
            return Reply(ex);
        }
        catch (Exception ex) when (BrokerConnection.IsConnectionFailure(ex))
        {
            return null; // the first difference still explains the refusal
        }
    }

    /// <summary>Reads a broker reply such as <c>inequivalent arg 'x-queue-type' for queue 'q' in vhost 'v': received none but current is the value 'quorum' of type 'longstr'</c>.</summary>
    internal static Difference? Parse(string reply, IReadOnlyDictionary<string, object?> arguments)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        if (Inequivalent().Match(reply) is not { Success: true } match)
            return null;
        var argument = match.Groups["arg"].Value;
        var (onBroker, type) = Value(match.Groups["current"].Value);
        return new Difference(argument, Display(arguments.GetValueOrDefault(argument)), onBroker, type);
    }

    static (string? Value, string? Type) Value(string text)
    {
        if (text == "none")
            return (null, null);
        var typed = TypedValue().Match(text);
        if (typed.Success)
            return (typed.Groups["value"].Value, typed.Groups["type"].Value);
        return (text.Trim('\''), null);
    }

    static string? Display(object? value) => value switch
    {
        null => null,
        byte[] bytes => System.Text.Encoding.UTF8.GetString(bytes),
        IFormattable formattable => formattable.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString(),
    };

    /// <summary>The broker's value, typed like ours (or as the broker says) so the next declaration compares equal on it.</summary>
    static object BrokerValue(Difference difference, object? ours)
    {
        var text = difference.OnBroker!;
        var numeric = difference.BrokerType is { } type ? type != "longstr" : ours is not (null or string);
        return numeric && long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var number)
            ? number is >= int.MinValue and <= int.MaxValue ? (int)number : number
            : text;
    }

    static string? SettingOf(string argument) => argument switch
    {
        LaneQueueTopology.QueueTypeArgument => "LaneQueue:QuorumQueues",
        LaneQueueTopology.DeliveryLimitArgument or LaneQueueTopology.DeadLetterExchangeArgument => "LaneQueue:DeliveryLimit",
        LaneQueueTopology.MaxPriorityArgument => "LaneQueue:Topology",
        _ => null,
    };

    static readonly string[] SettingOrder = ["LaneQueue:QuorumQueues", "LaneQueue:DeliveryLimit", "LaneQueue:Topology"];

    /// <summary>The most fundamental setting first (the queue type explains a different delivery limit too); unknown arguments last.</summary>
    static int Rank(string? setting) => setting is null ? SettingOrder.Length : Array.IndexOf(SettingOrder, setting);

    internal static TopologyMismatchException Describe(string queue, IReadOnlyList<Difference> differences, string reply, Exception refusal)
    {
        if (differences.Count == 0)
        {
            return new TopologyMismatchException(
                $"the existing queue '{queue}' was declared with other arguments than LaneQueue declares: {reply}. " +
                "Set LaneQueue:Topology, QuorumQueues and DeliveryLimit as the consumers have them, or delete the queue (its tasks are lost).", refusal);
        }
        differences = [.. differences.OrderBy(d => Rank(SettingOf(d.Argument)))];
        var settings = differences.Select(d => SettingOf(d.Argument)).OfType<string>().Distinct().ToList();
        var details = string.Join("; ", differences.Select(d =>
            $"{d.Argument}: {Shown(d.Argument, d.Here)} here, {Shown(d.Argument, d.OnBroker)} on the broker{(SettingOf(d.Argument) is null ? " (not a LaneQueue setting)" : "")}"));
        var lead = settings.Count > 0
            ? $"{string.Join(" and ", settings)} {(settings.Count == 1 ? "does" : "do")} not match the existing queue '{queue}'"
            : $"the existing queue '{queue}' has arguments LaneQueue does not declare";
        var fix = Suggestion(differences) is { Length: > 0 } suggestion ? $" ({suggestion})" : "";
        return new TopologyMismatchException(
            $"{lead} ({details}): the broker keeps a queue's arguments and refuses to declare it differently. " +
            $"Configure every producer and consumer of this vhost as the queue was declared{fix}, or delete the queue (its tasks are lost) " +
            $"to change it. Broker: {reply}", refusal)
        { Setting = settings.FirstOrDefault() };
    }

    /// <summary>The settings that would match the broker, where the arguments tell them.</summary>
    static string Suggestion(IReadOnlyList<Difference> differences)
    {
        var parts = new List<string>();
        if (differences.FirstOrDefault(d => d.Argument == LaneQueueTopology.QueueTypeArgument) is { } type)
            parts.Add($"LaneQueue:QuorumQueues={(type.OnBroker == "quorum" ? "true" : "false")}");
        if (differences.FirstOrDefault(d => d.Argument == LaneQueueTopology.DeliveryLimitArgument) is { } limit)
            parts.Add(limit.OnBroker is null ? "no LaneQueue:DeliveryLimit" : $"LaneQueue:DeliveryLimit={limit.OnBroker}");
        return string.Join(", ", parts);
    }

    /// <summary>An absent <c>x-queue-type</c> means classic; other absent arguments are "none".</summary>
    static string Shown(string argument, string? value) =>
        value ?? (argument == LaneQueueTopology.QueueTypeArgument ? "classic" : "none");

    static TopologyMismatchException Invalid(string queue, IReadOnlyDictionary<string, object?> arguments, string argument, string reply, Exception refusal)
    {
        if (argument == LaneQueueTopology.MaxPriorityArgument && arguments.GetValueOrDefault(LaneQueueTopology.QueueTypeArgument) is "quorum")
        {
            return new TopologyMismatchException(
                $"LaneQueue:Topology=PriorityQueue does not work with LaneQueue:QuorumQueues=true on this broker: it refuses " +
                $"{argument} on the quorum queue '{queue}'. Use classic queues (LaneQueue:QuorumQueues=false) with the priority-queue " +
                $"topology, or the queue-per-lane topology. Broker: {reply}", refusal)
            { Setting = "LaneQueue:Topology" };
        }
        return new TopologyMismatchException($"the broker refuses argument {argument} of queue '{queue}': {reply}", refusal) { Setting = SettingOf(argument) };
    }

    static string Reply(OperationInterruptedException refusal) => refusal.ShutdownReason?.ReplyText ?? refusal.Message;

    [GeneratedRegex(@"inequivalent arg '(?<arg>[^']+)' for queue '[^']*' in vhost '[^']*': received (?<received>.+?) but current is (?<current>.+)$", RegexOptions.CultureInvariant)]
    private static partial Regex Inequivalent();

    [GeneratedRegex(@"invalid arg '(?<arg>[^']+)' for queue", RegexOptions.CultureInvariant)]
    private static partial Regex InvalidArgument();

    [GeneratedRegex(@"^(?:the value )?'(?<value>.*)' of type '(?<type>[^']+)'$", RegexOptions.CultureInvariant)]
    private static partial Regex TypedValue();
}
