using System.Collections.Concurrent;
using System.Text.Json;
using LaneQueue.Tests.Broker;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace LaneQueue.Tests.Integration;

/// <summary>
/// Every result (<c>lanequeue.results</c>, <c>#</c>) and every task event (<c>lanequeue.events</c>, <c>command.#</c>) of a
/// vhost, kept in arrival order and counted per task id, so a test can assert "exactly one result and one terminal event"
/// (or none) for each message it sent, not only the last one.
/// </summary>
internal sealed class ContractListener : IAsyncDisposable
{
    static readonly string[] TerminalEvents = [TaskEvent.Completed, TaskEvent.DeadLettered, TaskEvent.Cancelled, TaskEvent.Duplicate];

    readonly IConnection _connection;
    readonly ConcurrentQueue<ExternalTaskResult> _results = new();
    readonly ConcurrentQueue<TaskEvent> _events = new();

    ContractListener(IConnection connection) => _connection = connection;

    public static async Task<ContractListener> StartAsync(string url)
    {
        var factory = new ConnectionFactory { Uri = new Uri(url), ClientProvidedName = "lanequeue-test-contract-listener" };
        var listener = new ContractListener(await factory.CreateConnectionAsync());
        await listener.BindAsync(BrokerNames.ResultsExchange, "topic", "#", body => listener._results.Enqueue(TaskJson.Deserialize<ExternalTaskResult>(body)));
        await listener.BindAsync(BrokerNames.EventsExchange, "topic", "command.#", body => listener._events.Enqueue(TaskJson.Deserialize<TaskEvent>(body)));
        return listener;
    }

    async Task BindAsync(string exchange, string type, string pattern, Action<ReadOnlySpan<byte>> received)
    {
        var channel = await _connection.CreateChannelAsync();
        await channel.ExchangeDeclareAsync(exchange, type, durable: true);
        var queue = (await channel.QueueDeclareAsync("", durable: false, exclusive: true, autoDelete: true)).QueueName;
        await channel.QueueBindAsync(queue, exchange, pattern);
        var consumer = new AsyncEventingBasicConsumer(channel);
        consumer.ReceivedAsync += (_, delivery) =>
        {
            received(delivery.Body.Span);
            return Task.CompletedTask;
        };
        await channel.BasicConsumeAsync(queue, autoAck: true, consumer);
    }

    public IReadOnlyList<ExternalTaskResult> ResultsOf(string taskId) => [.. _results.Where(r => r.TaskId == taskId)];

    public IReadOnlyList<TaskEvent> EventsOf(string taskId) => [.. _events.Where(e => e.TaskId == taskId)];

    public IReadOnlyList<TaskEvent> TerminalEventsOf(string taskId) => [.. EventsOf(taskId).Where(e => TerminalEvents.Contains(e.Event))];

    public IReadOnlyList<ExternalTaskResult> Results => [.. _results];

    public IReadOnlyList<TaskEvent> Events => [.. _events];

    /// <summary>Waits for the result of <paramref name="taskId"/> and its terminal event, then a moment more for any second one.</summary>
    public async Task<ExternalTaskResult> SettledResultAsync(string taskId, int timeoutSeconds = 30)
    {
        await TestVhost.EventuallyAsync(() => Task.FromResult(ResultsOf(taskId).Count > 0 && TerminalEventsOf(taskId).Count > 0),
            $"the result and terminal event of '{taskId}'", timeoutSeconds);
        await Task.Delay(500);
        return ResultsOf(taskId)[0];
    }

    public async ValueTask DisposeAsync() => await _connection.DisposeAsync();
}
