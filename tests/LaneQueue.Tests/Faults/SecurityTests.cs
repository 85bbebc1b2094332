using LaneQueue.Contracts;
using LaneQueue.Producer;
using LaneQueue.Tests.Broker;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;
using Xunit.Abstractions;

namespace LaneQueue.Tests.Faults;

/// <summary>scripts/broker-users.sh: least-privilege producer, consumer and admin users, proven against a real broker.</summary>
[Collection(FaultCollection.Name)]
public sealed class SecurityTests(FaultBrokerFixture broker, ITestOutputHelper output) : IAsyncLifetime
{
    readonly string _suffix = Guid.NewGuid().ToString("N")[..6];
    readonly Dictionary<string, string> _passwords = new()
    {
        ["producer"] = Guid.NewGuid().ToString("N"),
        ["consumer"] = Guid.NewGuid().ToString("N"),
        ["admin"] = Guid.NewGuid().ToString("N"),
    };
    readonly List<IHost> _hosts = [];

    string Vhost => $"lq-sec-{_suffix}";

    string User(string role) => $"lq-{role}-{_suffix}";

    string Url(string role) => broker.Node.Url(Vhost, User(role), _passwords[role]);

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var host in _hosts)
            await host.StopQuietlyAsync();
        await broker.Node.DeleteVhostAsync(Vhost);
        foreach (var role in _passwords.Keys)
        {
            using var _ = await broker.Node.Management.DeleteAsync($"api/users/{User(role)}");
        }
    }

    async Task CreateUsersAsync()
    {
        var run = await Repo.ScriptAsync("broker-users.sh", [], TimeSpan.FromSeconds(180), new Dictionary<string, string>
        {
            ["LANEQUEUE_RABBITMQ_MANAGEMENT_URL"] = $"http://127.0.0.1:{broker.Node.ManagementPort}",
            ["LQ_VHOST"] = Vhost,
            ["LQ_PRODUCER_USER"] = User("producer"),
            ["LQ_CONSUMER_USER"] = User("consumer"),
            ["LQ_ADMIN_USER"] = User("admin"),
            ["LQ_PRODUCER_PASSWORD"] = _passwords["producer"],
            ["LQ_CONSUMER_PASSWORD"] = _passwords["consumer"],
            ["LQ_ADMIN_PASSWORD"] = _passwords["admin"],
        });
        output.WriteLine(run.Output);
        Assert.True(run.ExitCode == 0, run.Output);
        foreach (var password in _passwords.Values)
            Assert.DoesNotContain(password, run.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Each_role_can_do_its_job_and_the_producer_cannot_consume_purge_snoop_or_command()
    {
        await CreateUsersAsync();

        // The consumer user is enough to run a consumer; the producer user to submit and wait for a result.
        var consumer = await ConsumerHost.StartAsync(Url("consumer"), name: "restricted-consumer");
        _hosts.Add(consumer);
        // ... including the fleet monitor's election and lane-state broadcasts.
        await TestVhost.EventuallyAsync(() => Task.FromResult(consumer.Services.GetRequiredService<LaneQueue.Consumer.FleetMonitor>().IsMonitor
            && consumer.Gate().Broadcasts > 0), "the restricted consumer is the fleet monitor and follows its broadcasts");
        await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = Url("producer") });
        foreach (var lane in SessionLanes.All)
        {
            var result = await producer.SubmitAndWaitAsync(ExternalTask.Create($"sec-{lane.WireName()}", lane, new { n = 1 }), TimeSpan.FromSeconds(30));
            Assert.True(result.Success, $"{lane}: {result.Error}");
        }
        // ... and a delayed task, through the delay tree the consumer declared (the producer user may only publish to it).
        var delayed = await producer.SubmitAndWaitAsync(ExternalTask.Create("sec-delayed", SessionLane.Query, new { n = 1 }).After(TimeSpan.FromMilliseconds(500)), TimeSpan.FromSeconds(30));
        Assert.True(delayed.Success, $"delayed: {delayed.Error}");
        // The consumer user can retry and dead-letter (a task that always fails).
        Assert.False((await producer.SubmitAndWaitAsync(ExternalTask.Create("sec-bad", SessionLane.Query, null, "fail"), TimeSpan.FromSeconds(30))).Success);
        // ... and publish the session interrupt a lanequeue.interrupt task asks for (the producer user may not send fleet commands itself).
        var interrupt = await producer.SubmitAndWaitAsync(ExternalTask.Create("sec-interrupt", SessionLane.Control, new { session_id = "s-sec" }, "lanequeue.interrupt"),
            TimeSpan.FromSeconds(30));
        Assert.True(interrupt.Success, interrupt.Error);
        // ... and claim de-duplication keys (lanequeue.dedup.*).
        Assert.True((await producer.SubmitAndWaitAsync(ExternalTask.Create("sec-dedup-1", SessionLane.Query, new { n = 1 }).DedupedBy("sec-key"), TimeSpan.FromSeconds(30))).Success);
        Assert.Equal(TaskStatuses.Duplicate,
            (await producer.SubmitAndWaitAsync(ExternalTask.Create("sec-dedup-2", SessionLane.Query, new { n = 2 }).DedupedBy("sec-key"), TimeSpan.FromSeconds(30))).Status);

        // What the producer user must not do: each is refused by the broker (ACCESS_REFUSED, 403).
        var refusals = new Dictionary<string, Func<IChannel, Task>>
        {
            ["consume a lane"] = c => c.BasicConsumeAsync(BrokerNames.LaneQueue(SessionLane.Query), autoAck: true, new AsyncDefaultBasicConsumerStub(c)),
            ["get from a lane"] = c => c.BasicGetAsync(BrokerNames.LaneQueue(SessionLane.Query), autoAck: true),
            ["purge a lane"] = c => c.QueuePurgeAsync(BrokerNames.LaneQueue(SessionLane.Query)),
            ["purge dead letters"] = c => c.QueuePurgeAsync(DeadLetters.QueueOf(SessionLane.Query)),
            ["delete a lane"] = c => c.QueueDeleteAsync(BrokerNames.LaneQueue(SessionLane.Query)),
            ["read every result (#)"] = async c =>
            {
                var q = (await c.QueueDeclareAsync($"lanequeue.replies.{Guid.NewGuid():N}", false, true, true)).QueueName;
                await c.QueueBindAsync(q, BrokerNames.ResultsExchange, "#");
            },
            ["publish a fleet command"] = c => c.BasicPublishAsync(BrokerNames.FleetExchange, "", true, new BasicProperties(), "{}"u8.ToArray()).AsTask(),
            ["publish a result"] = c => c.BasicPublishAsync(BrokerNames.ResultsExchange, "sec-query", true, new BasicProperties(), "{}"u8.ToArray()).AsTask(),
        };
        var factory = BrokerConnection.Factory(Url("producer"), "security-test");
        await using var connection = await factory.CreateConnectionAsync();
        foreach (var (what, attempt) in refusals)
        {
            await using var channel = await connection.CreateChannelAsync(new CreateChannelOptions(true, true));
            var refused = await Assert.ThrowsAnyAsync<OperationInterruptedException>(() => attempt(channel));
            Assert.True(refused.ShutdownReason?.ReplyCode == 403, $"{what}: expected ACCESS_REFUSED, got {refused.ShutdownReason}");
            output.WriteLine($"producer may not {what}: {refused.ShutdownReason?.ReplyText}");
        }
        // A fleet command through the producer API: the broker's refusal comes back as is (the channel's close, 403).
        var cancel = await Assert.ThrowsAnyAsync<OperationInterruptedException>(() => producer.CancelTaskAsync("sec-query"));
        Assert.True(cancel.ShutdownReason?.ReplyCode == 403, $"cancel: expected ACCESS_REFUSED, got {cancel.GetType().Name}: {cancel.Message}");
        Assert.Contains("lanequeue.fleet", cancel.ShutdownReason!.ReplyText, StringComparison.Ordinal);
        output.WriteLine($"producer may not cancel: {cancel.GetType().Name}: {cancel.ShutdownReason.ReplyText}");

        // The admin user runs the control commands.
        await using var admin = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = Url("admin") });
        await admin.CancelTaskAsync("sec-whatever");
        await TestVhost.EventuallyAsync(async () =>
        {
            try
            {
                return (await admin.DeadLetters.ListAsync(DeadLetters.QueueOf(SessionLane.Query))).Count == 1;
            }
            catch (OperationInterruptedException)
            {
                return false; // the error queue is declared with the first dead letter
            }
        }, "the dead letter", 30);
        Assert.Equal(1u, await admin.DeadLetters.PurgeAsync(DeadLetters.QueueOf(SessionLane.Query)));

        // Recurring schedules: adding one is a fleet command (admin only); the restricted consumer fires it (it declares,
        // appends to and reads lanequeue.schedules.fired); the producer user may list them with their last firing.
        var add = await Assert.ThrowsAnyAsync<OperationInterruptedException>(() =>
            producer.AddScheduleAsync(new TaskSchedule { Id = "sec-tick", IntervalMs = 1000, Lane = SessionLane.Query }));
        Assert.True(add.ShutdownReason?.ReplyCode == 403, $"schedule add: expected ACCESS_REFUSED, got {add.ShutdownReason}");
        await admin.AddScheduleAsync(new TaskSchedule { Id = "sec-tick", IntervalMs = 1000, Lane = SessionLane.Query, CommandType = "echo" });
        var fired = await TestVhost.PollAsync(async () => (await producer.ListSchedulesAsync()).SingleOrDefault(s => s.LastFiring is not null)?.LastFiring,
            "the producer user lists the schedule with its last firing", 30);
        await TestVhost.EventuallyAsync(async () => (await admin.GetTaskHistoryAsync(fired.TaskId)).Final?.Status == TaskStatuses.Completed,
            $"the firing {fired.TaskId} completed on the restricted consumer", 30);
        await admin.RemoveScheduleAsync("sec-tick");
    }

    /// <summary>A consumer that is never meant to receive anything.</summary>
    sealed class AsyncDefaultBasicConsumerStub(IChannel channel) : AsyncDefaultBasicConsumer(channel);
}
