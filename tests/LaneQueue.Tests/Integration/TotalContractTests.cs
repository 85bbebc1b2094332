using System.Collections.Concurrent;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using LaneQueue.Tests.Broker;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using RabbitMQ.Client;
using Xunit.Abstractions;

namespace LaneQueue.Tests.Integration;

/// <summary>
/// Issue 16's rule against a real broker (docs/wire-contract.md §6): every message whose id can be read ends with exactly
/// one result and one terminal event, failures that can never succeed are not retried, and a redelivered copy of an
/// answered message gets no second result.
/// </summary>
[Collection(BrokerCollection.Name)]
public class TotalContractTests(BrokerFixture broker, ITestOutputHelper output)
{
    sealed class NeedsMissingService(TotalContractTests.IMissing missing) : ITaskHandler
    {
        public Task<object?> HandleAsync(TaskContext context) => Task.FromResult<object?>(missing.ToString());
    }

    internal interface IMissing;

    [Fact]
    public async Task Sleep_with_ms_abc_fails_once_as_a_payload_problem_and_is_not_retried()
    {
        await using var vhost = await broker.CreateVhostAsync();
        var consumer = await ConsumerHost.StartAsync(vhost.Url, o =>
            o.Queue = o.Queue with { RetryPolicy = new RetryPolicy { Strategy = RetryStrategy.Fixed, MaxRetries = 3, FixedDelayMs = 50 } });
        try
        {
            await using var listener = await ContractListener.StartAsync(vhost.Url);
            await using var client = await RawClient.ConnectAsync(vhost.Url);
            await client.PublishAsync("execute", """{"id":"sleep-abc","lane":"execute","payload":{"ms":"abc"},"command_type":"sleep"}""");

            var result = await listener.SettledResultAsync("sleep-abc");
            const string error = "payload: ms must be a whole number of milliseconds from 0 to 2147483647, got \"abc\"";
            Assert.Equal((TaskStatuses.Failed, error, 1), (result.Status, result.Error, result.Attempts));
            Assert.Single(listener.ResultsOf("sleep-abc"));
            Assert.Equal([TaskEvent.Started, TaskEvent.Failed, TaskEvent.DeadLettered], listener.EventsOf("sleep-abc").Select(e => e.Event));
            var letter = Assert.Single(await client.DeadLettersAsync(SessionLane.Execute, 1));
            Assert.Equal(error + " (failed, not retried: it cannot succeed)", letter.Reason);
        }
        finally
        {
            await consumer.StopQuietlyAsync();
        }
    }

    [Fact]
    public async Task A_run_the_consumer_cannot_finish_is_answered_as_consumer_problem()
    {
        await using var vhost = await broker.CreateVhostAsync();
        var consumer = await ConsumerHost.StartAsync(vhost.Url, handlers: c => c.AddHandler<NeedsMissingService>("needs-missing"));
        try
        {
            await using var listener = await ContractListener.StartAsync(vhost.Url);
            await using var client = await RawClient.ConnectAsync(vhost.Url);
            await client.PublishAsync("query", """{"id":"no-dep","lane":"query","payload":{},"command_type":"needs-missing"}""");

            var result = await listener.SettledResultAsync("no-dep");
            output.WriteLine(result.Error);
            Assert.Equal(TaskStatuses.Failed, result.Status);
            Assert.StartsWith("consumer: could not finish the task: ", result.Error, StringComparison.Ordinal);
            Assert.Contains(nameof(IMissing), result.Error, StringComparison.Ordinal);
            Assert.Single(listener.ResultsOf("no-dep"));
            Assert.Equal([TaskEvent.Failed, TaskEvent.DeadLettered], listener.EventsOf("no-dep").Select(e => e.Event));
            Assert.Equal(result.Error, Assert.Single(await client.DeadLettersAsync(SessionLane.Query, 1)).Reason);
        }
        finally
        {
            await consumer.StopQuietlyAsync();
        }
    }

    [Fact]
    public async Task Dead_letter_listing_shows_the_id_of_a_broken_message_whenever_it_is_readable()
    {
        await using var vhost = await broker.CreateVhostAsync();
        var consumer = await ConsumerHost.StartAsync(vhost.Url);
        try
        {
            await using var client = await RawClient.ConnectAsync(vhost.Url);
            await client.PublishAsync("query", """{"id":"listed-1","lane":"Query","payload":{}}""");
            await client.PublishAsync("query", """{"lane":"query","payload":{}}""");
            await TestVhost.EventuallyAsync(async () => await client.CountAsync(TestVhost.DeadLetters(SessionLane.Query)) == 2, "two dead letters");
            await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = vhost.Url });
            var letters = await producer.DeadLetters.ListAsync(DeadLetters.QueueOf(SessionLane.Query));
            Assert.Equal(["listed-1", null], letters.Select(l => l.TaskId).OrderByDescending(id => id, StringComparer.Ordinal));
            Assert.All(letters, l => Assert.Null(l.Lane)); // listed, not redrivable
        }
        finally
        {
            await consumer.StopQuietlyAsync();
        }
    }

    /// <summary>
    /// The dead-letter queue refuses the move (a policy with max-length 0 and reject-publish, as the production policy does
    /// when a dead-letter queue is full): MassTransit nacks the delivery back to its lane, and the broker redelivers it again
    /// and again. The first delivery was answered; none of the redelivered copies is.
    /// </summary>
    [Theory]
    [InlineData("""{"id":"full-1","lane":"Query","payload":{}}""", false)] // refused: breaks the contract
    [InlineData("""{"id":"full-1","lane":"query","payload":{},"command_type":"fail"}""", true)] // ran, failed for good
    public async Task Redelivered_copies_of_an_answered_message_get_no_second_result(string body, bool runs)
    {
        await using var vhost = await broker.CreateVhostAsync();
        var policy = $"api/policies/{Uri.EscapeDataString(vhost.Name)}/full-dead-letters";
        using (var put = await broker.Management.PutAsync(policy, JsonContent.Create(new
               {
                   pattern = "^lanequeue\\.query_error$",
                   definition = new Dictionary<string, object> { ["max-length"] = 0, ["overflow"] = "reject-publish" },
                   priority = 10,
                   apply_to = "queues",
               }, options: new JsonSerializerOptions { PropertyNamingPolicy = JsonNamingPolicy.KebabCaseLower })))
            put.EnsureSuccessStatusCode();
        var consumer = await ConsumerHost.StartAsync(vhost.Url, o => o.Queue = o.Queue with { RetryPolicy = new RetryPolicy { Strategy = RetryStrategy.None } });
        try
        {
            await using var listener = await ContractListener.StartAsync(vhost.Url);
            await using var client = await RawClient.ConnectAsync(vhost.Url);
            await client.PublishAsync("query", body);

            await listener.SettledResultAsync("full-1");
            long redelivered = 0;
            await TestVhost.EventuallyAsync(async () =>
            {
                redelivered = (await vhost.QueueAsync(BrokerNames.LaneQueue(SessionLane.Query)))?.TryGetProperty("message_stats", out var stats) == true
                    && stats.TryGetProperty("redeliver", out var count) ? count.GetInt64() : 0;
                return redelivered >= 3;
            }, "the refused move to come back as redeliveries", 30);
            output.WriteLine($"redelivered {redelivered} times while the dead-letter queue refused it");

            using (await broker.Management.DeleteAsync(policy))
            {
            }
            var letter = Assert.Single(await client.DeadLettersAsync(SessionLane.Query, 1));
            await Task.Delay(500);
            Assert.Single(listener.ResultsOf("full-1"));
            Assert.Single(listener.TerminalEventsOf("full-1"));
            Assert.Equal(0u, await client.CountAsync(BrokerNames.LaneQueue(SessionLane.Query)));
            // The copies were not run again either: one start (a task that ran) or none (a refused message).
            Assert.Equal(runs ? 1 : 0, listener.EventsOf("full-1").Count(e => e.Event == TaskEvent.Started));
            if (!runs)
                Assert.Equal(listener.ResultsOf("full-1")[0].Error, letter.Reason);
            else
                Assert.StartsWith("failed after 1 attempt(s): the fail handler always fails", letter.Reason, StringComparison.Ordinal);
        }
        finally
        {
            await consumer.StopQuietlyAsync();
        }
    }

    /// <summary>What the consumer saw come back with the redelivered flag, and when its lane gate paused a lane.</summary>
    sealed class RedeliveryTrace : IReceiveObserver
    {
        public ConcurrentQueue<(DateTimeOffset At, string Queue, string? Id)> Redelivered { get; } = new();

        public Task PreReceive(ReceiveContext context)
        {
            if (context.Redelivered)
                Redelivered.Enqueue((DateTimeOffset.UtcNow, context.InputAddress.AbsolutePath.Split('/')[^1], TaskIdentity.Read(context.Body.GetBytes())?.Id));
            return Task.CompletedTask;
        }

        public Task PostReceive(ReceiveContext context) => Task.CompletedTask;

        public Task PostConsume<T>(ConsumeContext<T> context, TimeSpan duration, string consumerType) where T : class => Task.CompletedTask;

        public Task ConsumeFault<T>(ConsumeContext<T> context, TimeSpan duration, string consumerType, Exception exception) where T : class => Task.CompletedTask;

        public Task ReceiveFault(ReceiveContext context, Exception exception) => Task.CompletedTask;
    }

    /// <summary>
    /// The hostile corpus of <see cref="HostileInputTests"/> in one burst, next to valid tasks in every lane (the control
    /// lane busy with short sleeps), into one consumer with its lane gate on: every readable id gets exactly one result and
    /// one terminal event, the others none, every valid task completes, nothing is left in a lane, and no lane queue counts a
    /// single redelivery (the broker's counters and the consumer's own receive observer agree: the gate hands nothing back).
    /// </summary>
    [Fact]
    public async Task Hostile_corpus_burst_answers_each_readable_id_once_and_causes_no_redelivery()
    {
        await using var vhost = await broker.CreateVhostAsync();
        var consumer = await ConsumerHost.StartAsync(vhost.Url);
        var trace = new RedeliveryTrace();
        try
        {
            consumer.Services.GetRequiredService<ILaneQueueBus>().ConnectReceiveObserver(trace);
            await using var listener = await ContractListener.StartAsync(vhost.Url);
            await using var client = await RawClient.ConnectAsync(vhost.Url);

            var garbage = HostileInputTests.Cases.Values.ToList();
            var valid = new List<(string Lane, string Body, string Id)>();
            foreach (var lane in SessionLanes.All)
            {
                for (var i = 0; i < 15; i++)
                {
                    var id = $"ok-{lane.WireName()}-{i}";
                    var body = lane == SessionLane.Control
                        ? $$$"""{"id":"{{{id}}}","lane":"control","payload":{"ms":40},"command_type":"sleep"}"""
                        : $$$"""{"id":"{{{id}}}","lane":"{{{lane.WireName()}}}","payload":{"n":{{{i}}}}}""";
                    valid.Add((lane.WireName(), body, id));
                }
            }
            var before = await RedeliverCountsAsync(vhost);
            var publishes = garbage.Select(g => (Func<Task>)(() => client.PublishAsync(g.RoutingKey, g.Body, new BasicProperties { ContentType = g.ContentType, ContentEncoding = g.ContentEncoding })))
                .Concat(valid.Select(v => (Func<Task>)(() => client.PublishAsync(v.Lane, v.Body))))
                .OrderBy(_ => Random.Shared.Next()).ToList();
            foreach (var publish in publishes)
                await publish();

            var readable = garbage.Where(g => g.AnswerId is not null).Select(g => g.AnswerId!).ToList();
            await TestVhost.EventuallyAsync(() => Task.FromResult(
                valid.All(v => listener.ResultsOf(v.Id).Count > 0) && readable.All(id => listener.TerminalEventsOf(id).Count > 0)), "every valid and readable id answered", 90);
            await TestVhost.EventuallyAsync(async () => await client.CountAsync(TestVhost.DeadLetters(SessionLane.Query)) >= garbage.Count, "every garbage message dead-lettered", 60);
            await Task.Delay(1000); // any second answer has time to arrive

            Assert.All(valid, v => Assert.True(listener.ResultsOf(v.Id) is [{ Success: true }], $"{v.Id}: {listener.ResultsOf(v.Id).Count} results"));
            Assert.All(readable, id => Assert.True(listener.ResultsOf(id) is [{ Status: TaskStatuses.Failed }] && listener.TerminalEventsOf(id).Count == 1,
                $"{id}: {listener.ResultsOf(id).Count} results, {listener.TerminalEventsOf(id).Count} terminal events"));
            Assert.Equal(valid.Count + readable.Count, listener.Results.Count);
            Assert.Equal((uint)garbage.Count, await client.CountAsync(TestVhost.DeadLetters(SessionLane.Query)));
            foreach (var lane in SessionLanes.All)
                Assert.Equal(0u, await client.CountAsync(BrokerNames.LaneQueue(lane)));

            // The management API's counters lag (collect_statistics_interval): wait until they add up, then say what they are.
            var seen = trace.Redelivered.ToList();
            var after = await RedeliverCountsAsync(vhost);
            for (var i = 0; i < 40 && SessionLanes.All.Any(l => after[BrokerNames.LaneQueue(l)] - before[BrokerNames.LaneQueue(l)] != seen.Count(r => r.Queue == BrokerNames.LaneQueue(l))); i++)
            {
                await Task.Delay(500);
                seen = [.. trace.Redelivered];
                after = await RedeliverCountsAsync(vhost);
            }
            var report = new StringBuilder();
            foreach (var lane in SessionLanes.All)
            {
                var queue = BrokerNames.LaneQueue(lane);
                var rose = after[queue] - before[queue];
                var mine = seen.Where(r => r.Queue == queue).ToList();
                report.AppendLine($"{queue}: broker redeliver +{rose}; consumer saw {mine.Count} redelivered ({string.Join(", ", mine.Select(r => r.Id ?? "(no id)"))})");
            }
            output.WriteLine(report.ToString());
            // Scheduling never hands a delivery back to the broker: the lane gate stops no endpoint (it only orders the slots),
            // so no consumer died and no lane was paused means no redelivery at all (a quorum queue counts each one).
            foreach (var lane in SessionLanes.All)
                Assert.True(after[BrokerNames.LaneQueue(lane)] - before[BrokerNames.LaneQueue(lane)] == 0 && seen.Count == 0, $"redelivered:\n{report}");
        }
        finally
        {
            await consumer.StopQuietlyAsync();
        }
    }

    static async Task<Dictionary<string, long>> RedeliverCountsAsync(TestVhost vhost)
    {
        var counts = new Dictionary<string, long>();
        foreach (var lane in SessionLanes.All)
        {
            var queue = BrokerNames.LaneQueue(lane);
            var info = await vhost.QueueAsync(queue);
            counts[queue] = info?.TryGetProperty("message_stats", out var stats) == true && stats.TryGetProperty("redeliver", out var count) ? count.GetInt64() : 0;
        }
        return counts;
    }
}
