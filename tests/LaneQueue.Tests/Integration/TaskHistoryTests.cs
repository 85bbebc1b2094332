using System.CommandLine;
using LaneQueue.Cli;
using LaneQueue.Tests.Broker;

namespace LaneQueue.Tests.Integration;

/// <summary>A task can be looked up by id after it finished: its events and result are kept in the history stream.</summary>
[Collection(BrokerCollection.Name)]
public class TaskHistoryTests(BrokerFixture broker)
{
    static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task A_finished_task_is_found_by_id_with_its_timeline_and_wait_answers_at_once()
    {
        await using var vhost = await broker.CreateVhostAsync();
        var consumer = await ConsumerHost.StartAsync(vhost.Url, o =>
            o.Queue = o.Queue with { RetryPolicy = new RetryPolicy { Strategy = RetryStrategy.Fixed, MaxRetries = 1, FixedDelayMs = 100 } }, name: "history-consumer");
        try
        {
            await using (var submitter = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = vhost.Url }))
            {
                Assert.True((await submitter.SubmitAndWaitAsync(ExternalTask.Create("done-1", SessionLane.Query, new { q = 1 }), Wait)).Success);
                Assert.False((await submitter.SubmitAndWaitAsync(ExternalTask.Create("failed-1", SessionLane.Execute, new { message = "boom" }, "fail"), Wait)).Success);
            }

            // Later, from a producer that was not listening when the tasks ran.
            await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = vhost.Url });
            var done = await producer.GetTaskHistoryAsync("done-1");
            Assert.Equal([TaskEvent.Started, TaskEvent.Completed], done.Events.Select(e => e.Event));
            Assert.Equal(TaskStatuses.Completed, done.Final!.Status);
            Assert.Equal(1, done.Final.Result.GetProperty("q").GetInt32());
            Assert.Equal("""{"q":1}""", done.Payload!.Value.GetRawText()); // what ran, kept with its start
            Assert.Equal(7, done.PayloadBytes);

            var failed = await producer.GetTaskHistoryAsync("failed-1");
            Assert.Equal(
                [TaskEvent.Started, TaskEvent.Failed, TaskEvent.Retry, TaskEvent.Started, TaskEvent.Failed, TaskEvent.DeadLettered],
                failed.Events.Select(e => e.Event));
            Assert.Equal([1, 1, 2, 2, 2, 2], failed.Events.Select(e => e.Attempt));
            Assert.All(failed.Events, e => Assert.Equal("history-consumer", e.Consumer));
            Assert.Equal(TaskStatuses.Failed, failed.Final!.Status);
            Assert.Equal("boom", failed.Final.Error);
            Assert.Empty((await producer.GetTaskHistoryAsync("never-submitted")).Events);

            // The CLI: wait returns the result of a task that finished before it was asked, task show prints the timeline.
            var (code, output) = await CliAsync(vhost.Url, "wait", "--id", "done-1", "--timeout", "5");
            Assert.Equal(0, code);
            Assert.Contains("done-1: completed on history-consumer after 1 attempt(s)", output, StringComparison.Ordinal);
            (code, output) = await CliAsync(vhost.Url, "task", "show", "--id", "failed-1");
            Assert.Equal(0, code);
            Assert.Contains("command.dead_lettered", output, StringComparison.Ordinal);
            Assert.Contains("result: failed after 2 attempt(s) on history-consumer: boom", output, StringComparison.Ordinal);
            Assert.Contains("""payload: {"message":"boom"}""", output, StringComparison.Ordinal);
            (code, _) = await CliAsync(vhost.Url, "task", "show", "--id", "never-submitted");
            Assert.Equal(4, code);
        }
        finally
        {
            await consumer.StopQuietlyAsync();
        }
    }

    [Fact]
    public async Task A_payload_above_HistoryPayloadMaxBytes_is_noted_by_size_only()
    {
        await using var vhost = await broker.CreateVhostAsync();
        var consumer = await ConsumerHost.StartAsync(vhost.Url, o => o.HistoryPayloadMaxBytes = 32, name: "small-history");
        try
        {
            await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = vhost.Url });
            Assert.True((await producer.SubmitAndWaitAsync(ExternalTask.Create("small-1", SessionLane.Query, new { q = 1 }), Wait)).Success);
            Assert.True((await producer.SubmitAndWaitAsync(ExternalTask.Create("big-1", SessionLane.Query, new { text = new string('x', 100) }), Wait)).Success);

            var small = await producer.GetTaskHistoryAsync("small-1");
            Assert.Equal("""{"q":1}""", small.Payload!.Value.GetRawText());
            var big = await producer.GetTaskHistoryAsync("big-1");
            Assert.Null(big.Payload);
            Assert.Equal(111, big.PayloadBytes); // {"text":"x...x"}: 9 + 100 + 2
            Assert.Equal(TaskStatuses.Completed, big.Final!.Status);
            var (code, output) = await CliAsync(vhost.Url, "task", "show", "--id", "big-1");
            Assert.Equal(0, code);
            Assert.Contains("payload: 111 bytes, not kept", output, StringComparison.Ordinal);
        }
        finally
        {
            await consumer.StopQuietlyAsync();
        }
    }

    static async Task<(int Code, string Output)> CliAsync(string url, params string[] args)
    {
        var output = new StringWriter();
        var code = await ProducerCli.RunAsync([.. args, "--url", url], new InvocationConfiguration { Output = output, Error = output });
        return (code, output.ToString());
    }
}
