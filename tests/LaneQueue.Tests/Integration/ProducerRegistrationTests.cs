using LaneQueue.Consumer;
using LaneQueue.Contracts;
using LaneQueue.Producer;
using LaneQueue.Tests.Broker;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace LaneQueue.Tests.Integration;

/// <summary>AddLaneQueueProducer against a real broker: the injected producer in a host, and without one.</summary>
[Collection(BrokerCollection.Name)]
public sealed class ProducerRegistrationTests(BrokerFixture broker)
{
    /// <summary>Application code: takes the producer by injection.</summary>
    sealed class Orders(ILaneQueueProducer producer)
    {
        public Task<ExternalTaskResult> PlaceAsync(string id) =>
            producer.SubmitAndWaitAsync(ExternalTask.Create(id, SessionLane.Execute, new { order = id }), TimeSpan.FromSeconds(60));
    }

    [Fact]
    public async Task A_host_injects_the_producer_configured_from_the_LaneQueue_section_the_consumer_reads_too()
    {
        await using var vhost = await broker.CreateVhostAsync();
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        // One section for both: the broker URL and the lane settings (quorum queues here) are given once.
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["LaneQueue:RabbitMqUrl"] = vhost.Url,
            ["LaneQueue:QuorumQueues"] = "true",
            ["LaneQueue:ConsumerName"] = "di-consumer",
            ["LaneQueue:ShutdownTimeoutSeconds"] = "10",
        });
        builder.AddLaneQueueProducer(o => o.ClientName = "orders-app");
        builder.AddLaneQueueConsumer();
        builder.Services.AddSingleton<Orders>();
        using var host = builder.Build();
        await host.StartAsync().WaitAsync(TimeSpan.FromSeconds(90));
        try
        {
            var result = await host.Services.GetRequiredService<Orders>().PlaceAsync("order-1");
            Assert.True(result.Success, result.Error);
            Assert.Equal("di-consumer", result.Consumer);
            Assert.Equal("quorum", (await vhost.QueueAsync(BrokerNames.LaneQueue(SessionLane.Execute)))!.Value.GetProperty("type").GetString());

            // Recurring schedules through the injected producer (not the interface's NotSupported defaults).
            var injected = host.Services.GetRequiredService<ILaneQueueProducer>();
            await injected.AddScheduleAsync(new TaskSchedule { Id = "di-tick", IntervalMs = 1000, Lane = SessionLane.Query, CommandType = "echo" });
            var fired = await TestVhost.PollAsync(async () => (await injected.ListSchedulesAsync()).SingleOrDefault()?.LastFiring, "di-tick fired", 30);
            Assert.Equal("di-consumer", fired.Consumer);
            await injected.PauseScheduleAsync("di-tick");
            await injected.ResumeScheduleAsync("di-tick");
            await injected.RemoveScheduleAsync("di-tick");
            Assert.Empty(await injected.ListSchedulesAsync());
        }
        finally
        {
            await host.StopAsync().WaitAsync(TimeSpan.FromSeconds(60));
        }
    }

    [Fact]
    public async Task Without_a_host_the_first_call_connects_and_disposing_the_container_closes_it()
    {
        await using var vhost = await broker.CreateVhostAsync();
        var services = new ServiceCollection();
        services.AddLaneQueueProducer(o => o.RabbitMqUrl = vhost.Url);
        var provider = services.BuildServiceProvider();
        var producer = provider.GetRequiredService<ILaneQueueProducer>();

        // No consumer ever ran in this vhost: the producer declared the lanes when it connected.
        await producer.SubmitTaskAsync(ExternalTask.Create("no-host-1", SessionLane.Control));
        Assert.Equal(1u, await vhost.ReadyAsync(BrokerNames.LaneQueue(SessionLane.Control)));

        await provider.DisposeAsync();
        await Assert.ThrowsAsync<ObjectDisposedException>(() => producer.SubmitTaskAsync(ExternalTask.Create("no-host-2", SessionLane.Control)));
    }

    [Fact]
    public async Task A_host_whose_producer_cannot_match_the_lanes_fails_to_start_naming_the_setting()
    {
        await using var vhost = await broker.CreateVhostAsync();
        await using (await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = vhost.Url, QuorumQueues = true }))
        {
            // the lanes are quorum queues now
        }
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["LaneQueue:RabbitMqUrl"] = vhost.Url });
        builder.AddLaneQueueProducer();
        using var host = builder.Build();

        var error = await Assert.ThrowsAsync<TaskRejectedException>(() => host.StartAsync().WaitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains("LaneQueue:QuorumQueues does not match the existing queue", error.Message, StringComparison.Ordinal);
    }
}
