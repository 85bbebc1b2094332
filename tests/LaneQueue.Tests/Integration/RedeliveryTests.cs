using System.Collections.Concurrent;
using LaneQueue.Consumer;
using LaneQueue.Contracts;
using LaneQueue.Tests.Broker;
using Microsoft.Extensions.DependencyInjection;
using RabbitMQ.Client;

namespace LaneQueue.Tests.Integration;

/// <summary>
/// The crash window of at-least-once delivery: a consumer published a task's result and died before its ack, so the broker
/// delivers the task again. The consumer that gets the redelivery finds the stored result in the task history and answers
/// <c>duplicate</c> instead of running the task a second time, with no de-duplication traffic between consumers.
/// </summary>
[Collection(BrokerCollection.Name)]
public sealed class RedeliveryTests(BrokerFixture broker) : IAsyncLifetime
{
    TestFleet _fleet = null!;

    public async Task InitializeAsync() => _fleet = new TestFleet(await broker.CreateVhostAsync());

    public Task DisposeAsync() => _fleet.DisposeAsync().AsTask();

    [Fact]
    public async Task A_redelivered_task_whose_result_is_stored_is_answered_duplicate_and_not_run_again()
    {
        var log = new StartLog();
        var consumer = await _fleet.StartConsumerAsync("survivor", handlers: h => h.AddHandler(StartLog.CommandType, log.HandleAsync));
        var query = BrokerNames.LaneQueue(SessionLane.Query);
        await _fleet.Producer.PauseLaneAsync(SessionLane.Query);
        await TestVhost.EventuallyAsync(async () => await _fleet.Vhost.ConsumersAsync(query) == 0, "the query lane paused");

        var factory = new ConnectionFactory { Uri = new Uri(_fleet.Vhost.Url) };
        await using var connection = await factory.CreateConnectionAsync();
        await using var listen = await connection.CreateChannelAsync();
        var replies = (await listen.QueueDeclareAsync("", durable: false, exclusive: true, autoDelete: true)).QueueName;
        await listen.QueueBindAsync(replies, BrokerNames.ResultsExchange, "redelivered-1");
        await listen.QueueBindAsync(replies, BrokerNames.ResultsExchange, "fresh-1");

        // The "crashed" consumer: takes the task, publishes its completed result, and goes away without acking it.
        await _fleet.Producer.SubmitTaskAsync(StartLog.Make("redelivered-1", SessionLane.Query, 10));
        await using (var crashed = await connection.CreateChannelAsync(new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true)))
        {
            var taken = await crashed.BasicGetAsync(query, autoAck: false);
            Assert.NotNull(taken);
            var now = DateTimeOffset.UtcNow;
            var result = new ExternalTaskResult
            {
                TaskId = "redelivered-1", Lane = SessionLane.Query, Success = true, Status = TaskStatuses.Completed,
                Consumer = "crashed", StartedAt = now.AddMilliseconds(-10), FinishedAt = now, Attempts = 1,
            };
            await crashed.BasicPublishAsync(BrokerNames.ResultsExchange, "redelivered-1", mandatory: false,
                new BasicProperties { Persistent = true, ContentType = "application/json" }, TaskJson.Serialize(result));
        } // closed without an ack: the broker requeues the task, flagged redelivered
        // A task redelivered without a stored result still runs (at least once).
        await _fleet.Producer.SubmitTaskAsync(StartLog.Make("fresh-1", SessionLane.Query, 10));
        await using (var lost = await connection.CreateChannelAsync())
            Assert.NotNull(await lost.BasicGetAsync(query, autoAck: false));

        await _fleet.Producer.ResumeLaneAsync(SessionLane.Query);
        var results = new ConcurrentQueue<ExternalTaskResult>();
        await TestVhost.EventuallyAsync(async () =>
        {
            while (await listen.BasicGetAsync(replies, autoAck: true) is { } reply)
                results.Enqueue(TaskJson.Deserialize<ExternalTaskResult>(reply.Body.Span));
            return results.Count >= 3;
        }, "the crashed consumer's result, then one answer for each redelivered task");

        Assert.Null(log.StartOf("redelivered-1"));
        var answer = Assert.Single(results, r => r.TaskId == "redelivered-1" && r.Consumer == "survivor");
        Assert.Equal(TaskStatuses.Duplicate, answer.Status);
        Assert.Contains("crashed", answer.Error, StringComparison.Ordinal);
        Assert.NotNull(log.StartOf("fresh-1"));
        Assert.Equal(TaskStatuses.Completed, Assert.Single(results, r => r.TaskId == "fresh-1").Status);
        Assert.True(consumer.Services.GetRequiredService<RedeliveryCheck>().Reads >= 1);
    }
}
