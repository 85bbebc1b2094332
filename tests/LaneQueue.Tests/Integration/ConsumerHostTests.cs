using LaneQueue.Consumer;
using LaneQueue.Contracts;
using LaneQueue.Producer;
using LaneQueue.Tests.Broker;
using Microsoft.Extensions.Options;

namespace LaneQueue.Tests.Integration;

/// <summary>Consumer host behaviour: configuration, queue types, shutdown.</summary>
[Collection(BrokerCollection.Name)]
public class ConsumerHostTests(BrokerFixture broker)
{
    [Fact]
    public async Task Quorum_queues_by_configuration_carry_tasks_end_to_end()
    {
        await using var vhost = await broker.CreateVhostAsync();
        var consumer = await ConsumerHost.StartAsync(vhost.Url, o => o.QuorumQueues = true);
        try
        {
            await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = vhost.Url, QuorumQueues = true });
            var result = await producer.SubmitAndWaitAsync(ExternalTask.Create("quorum-1", SessionLane.Execute), TimeSpan.FromSeconds(30));
            Assert.True(result.Success);
            foreach (var lane in SessionLanes.All)
            {
                var queue = await vhost.QueueAsync(BrokerNames.LaneQueue(lane));
                Assert.Equal("quorum", queue!.Value.GetProperty("type").GetString());
            }
        }
        finally
        {
            await consumer.StopQuietlyAsync();
        }
    }

    [Fact]
    public async Task With_quorum_queues_and_a_delivery_limit_a_failed_task_is_dead_lettered_once_into_a_quorum_error_queue_without_a_limit()
    {
        await using var vhost = await broker.CreateVhostAsync();
        var consumer = await ConsumerHost.StartAsync(vhost.Url, o =>
        {
            o.QuorumQueues = true;
            o.DeliveryLimit = 5;
            o.Queue = o.Queue with { RetryPolicy = new RetryPolicy { Strategy = RetryStrategy.None } };
        });
        try
        {
            await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = vhost.Url, QuorumQueues = true, DeliveryLimit = 5 });
            var result = await producer.SubmitAndWaitAsync(ExternalTask.Create("dlq-quorum-1", SessionLane.Execute, new { message = "boom" }, "fail"), TimeSpan.FromSeconds(30));
            Assert.Equal(TaskStatuses.Failed, result.Status);
            var error = TestVhost.DeadLetters(SessionLane.Execute);
            await TestVhost.EventuallyAsync(async () => await vhost.ReadyAsync(error) == 1, "the dead letter");
            var queue = (await vhost.QueueAsync(error))!.Value;
            Assert.Equal("quorum", queue.GetProperty("type").GetString());
            Assert.False(queue.GetProperty("arguments").TryGetProperty("x-delivery-limit", out _), queue.GetProperty("arguments").ToString());
            // MassTransit's move to the _error queue went through at the first try: the letter carries the handler's reason, and
            // it is there once (a refused declare would have dropped the channel and had the task delivered again).
            var letter = Assert.Single(await producer.DeadLetters.ListAsync(error));
            Assert.Contains("boom", letter.Reason, StringComparison.Ordinal);
        }
        finally
        {
            await consumer.StopQuietlyAsync();
        }
    }

    [Fact]
    public async Task Graceful_shutdown_finishes_the_running_task_and_publishes_its_result()
    {
        await using var vhost = await broker.CreateVhostAsync();
        var log = new StartLog();
        var consumer = await ConsumerHost.StartAsync(vhost.Url, handlers: h => h.AddHandler(StartLog.CommandType, log.HandleAsync));
        await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = vhost.Url });
        var result = await producer.WatchResultAsync("slow-1");
        await producer.SubmitTaskAsync(StartLog.Make("slow-1", SessionLane.Generate, 1500));
        await TestVhost.EventuallyAsync(() => Task.FromResult(log.StartOf("slow-1") is not null), "the slow task started");

        await consumer.StopQuietlyAsync();

        Assert.Contains("slow-1", log.Finished);
        var finished = await result.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(finished.Success);
    }

    [Fact]
    public void Invalid_settings_stop_the_start_naming_the_setting()
    {
        var validator = new LaneQueueOptionsValidator();
        var result = validator.Validate(null, new LaneQueueOptions
        {
            RabbitMqUrl = "http://nope",
            SlotBudget = 0,
            Queue = new SessionQueueConfig { GenerateMaxConcurrency = 0 },
            LaneRateLimits = { [SessionLane.Query] = new RateLimit { LimitType = RateLimitType.PerSecond, MaxOperations = 0 } },
        });
        Assert.True(result.Failed);
        Assert.Contains("LaneQueue:RabbitMqUrl", result.FailureMessage, StringComparison.Ordinal);
        Assert.Contains("LaneQueue:SlotBudget", result.FailureMessage, StringComparison.Ordinal);
        Assert.Contains("LaneQueue:Queue:GenerateMaxConcurrency", result.FailureMessage, StringComparison.Ordinal);
        Assert.Contains("LaneQueue:LaneRateLimits:Query:MaxOperations", result.FailureMessage, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_host_with_an_invalid_setting_fails_to_start()
    {
        await using var vhost = await broker.CreateVhostAsync();
        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => ConsumerHost.StartAsync(vhost.Url, o => o.SlotBudget = -1));
        Assert.Contains("LaneQueue:SlotBudget", ex.Message, StringComparison.Ordinal);
    }
}
