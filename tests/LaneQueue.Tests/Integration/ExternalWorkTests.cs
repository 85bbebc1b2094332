using System.CommandLine;
using System.Text;
using LaneQueue.Cli;
using LaneQueue.Consumer;
using LaneQueue.Contracts;
using LaneQueue.Tests.Broker;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace LaneQueue.Tests.Integration;

/// <summary>
/// External lanes: the announcement waits in the lane's durable queue of external work, so a worker that starts listening
/// after it still gets the task; the producer lists the tasks that wait for a worker.
/// </summary>
[Collection(BrokerCollection.Name)]
public sealed class ExternalWorkTests(BrokerFixture broker) : IAsyncLifetime
{
    static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);
    TestFleet _fleet = null!;

    public async Task InitializeAsync() => _fleet = new TestFleet(await broker.CreateVhostAsync());

    public async Task DisposeAsync() => await _fleet.DisposeAsync();

    async Task<IReadOnlyList<PendingExternalTask>> PendingAsync() =>
        await _fleet.Producer.GetPendingExternalTasksAsync(TimeSpan.FromMilliseconds(700));

    [Fact]
    public async Task A_worker_that_starts_listening_after_the_announcement_gets_the_task_and_the_pending_list_empties()
    {
        await _fleet.StartConsumerAsync("consumer-0", o =>
        {
            o.HeartbeatIntervalMs = 200;
            o.Queue = o.Queue with
            {
                LaneHandlers = new() { [SessionLane.Execute] = new LaneHandlerConfig { Mode = TaskHandlerMode.External, TimeoutMs = 60_000 } },
            };
        });
        var result = await _fleet.Producer.WatchResultAsync("late-1");
        await _fleet.Producer.SubmitTaskAsync(ExternalTask.Create("late-1", SessionLane.Execute, new { job = "resize" }));

        // Announced (stored in the durable queue) and listed as pending, before any worker exists.
        var queue = BrokerNames.ExternalQueue(SessionLane.Execute);
        await TestVhost.EventuallyAsync(async () => await _fleet.Vhost.ReadyAsync(queue) == 1, "the announcement stored in " + queue);
        IReadOnlyList<PendingExternalTask> pending = [];
        await TestVhost.EventuallyAsync(async () => (pending = await PendingAsync()).Count == 1, "late-1 listed as pending");
        var listed = Assert.Single(pending);
        Assert.Equal("late-1", listed.TaskId);
        Assert.Equal(SessionLane.Execute, listed.Lane);
        Assert.Equal("consumer-0", listed.Consumer);
        Assert.Equal(1, listed.Attempt);
        Assert.Equal(TimeSpan.FromSeconds(60), listed.Deadline - listed.AnnouncedAt);
        // The CLI lists what the heartbeats it hears in its window say; a loaded machine can start it late in a beat: ask again.
        var (code, text) = (0, "");
        await TestVhost.EventuallyAsync(async () =>
        {
            (code, text) = await CliAsync("external", "pending", "--lane", "execute", "--listen", "1.5");
            return code != 0 || text.Contains("late-1", StringComparison.Ordinal);
        }, "lanequeue external pending lists late-1", timeoutSeconds: 60);
        Assert.Equal(0, code);
        Assert.Contains("late-1", text, StringComparison.Ordinal);
        Assert.Contains("external pending: 1", text, StringComparison.Ordinal);

        // The late worker: plain AMQP, manual acks, consumes the lane's queue of external work only now.
        var factory = new ConnectionFactory { Uri = new Uri(_fleet.Vhost.Url) };
        await using var connection = await factory.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        var taken = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var worker = new AsyncEventingBasicConsumer(channel);
        worker.ReceivedAsync += async (_, delivery) =>
        {
            var task = TaskJson.Deserialize<ExternalTask>(delivery.Body.Span);
            await channel.BasicPublishAsync(BrokerNames.ExternalCompletionsExchange, task.Id, mandatory: false, new BasicProperties(),
                Encoding.UTF8.GetBytes("{\"task_id\":\"" + task.Id + "\",\"success\":true,\"result\":{\"by\":\"late worker\"}}"));
            await channel.BasicAckAsync(delivery.DeliveryTag, multiple: false);
            taken.TrySetResult(task.Id);
        };
        await channel.BasicQosAsync(0, 1, false);
        await channel.BasicConsumeAsync(queue, autoAck: false, worker);

        Assert.Equal("late-1", await taken.Task.WaitAsync(Wait));
        var completed = await result.WaitAsync(Wait);
        Assert.True(completed.Success);
        Assert.Equal("late worker", completed.Result.GetProperty("by").GetString());
        await TestVhost.EventuallyAsync(async () => (await PendingAsync()).Count == 0, "the pending list empty after the completion");
        Assert.Contains("external pending: 0", (await CliAsync("external", "pending", "--listen", "0.7")).Output, StringComparison.Ordinal);
    }

    async Task<(int Code, string Output)> CliAsync(params string[] args)
    {
        var output = new StringWriter();
        var code = await ProducerCli.RunAsync([.. args, "--url", _fleet.Vhost.Url], new InvocationConfiguration { Output = output, Error = output });
        return (code, output.ToString());
    }
}
