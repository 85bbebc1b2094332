using LaneQueue.Tests.Broker;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace LaneQueue.Tests.Integration;

/// <summary>LaneQueue as a library in someone else's host: their own MassTransit bus beside it, their own typed handlers.</summary>
[Collection(BrokerCollection.Name)]
public class LibraryHostTests(BrokerFixture broker)
{
    static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    public sealed record Ping(string Text);

    /// <summary>The host's own MassTransit consumer, on the host's own bus.</summary>
    public sealed class PingConsumer(PingLog log) : IConsumer<Ping>
    {
        public Task Consume(ConsumeContext<Ping> context)
        {
            log.Received.TrySetResult(context.Message.Text);
            return Task.CompletedTask;
        }
    }

    public sealed class PingLog
    {
        public TaskCompletionSource<string> Received { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    public sealed record AnalysisRequest(string Prompt, int Depth);

    /// <summary>A typed handler: the payload arrives deserialized.</summary>
    public sealed class AnalysisHandler : ITaskHandler<AnalysisRequest>
    {
        public Task<object?> HandleAsync(AnalysisRequest payload, TaskContext context) =>
            Task.FromResult<object?>(new { summary = $"{payload.Prompt} at depth {payload.Depth}", attempt = context.Attempt });
    }

    [Fact]
    public async Task A_host_with_its_own_MassTransit_bus_and_consumer_runs_LaneQueue_beside_it()
    {
        await using var vhost = await broker.CreateVhostAsync();
        var url = new Uri(vhost.Url);
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning);
        builder.Services.AddSingleton<PingLog>();
        // The host's own bus, configured the usual way, before LaneQueue is added.
        builder.Services.AddMassTransit(x =>
        {
            x.AddConsumer<PingConsumer>();
            x.UsingRabbitMq((context, cfg) =>
            {
                cfg.Host(url.Host, (ushort)url.Port, url.AbsolutePath.TrimStart('/'), h =>
                {
                    h.Username("guest");
                    h.Password("guest");
                });
                cfg.ConfigureEndpoints(context);
            });
        });
        builder.AddLaneQueueConsumer(o =>
        {
            o.RabbitMqUrl = vhost.Url;
            o.ShutdownTimeoutSeconds = 5;
        }).AddHandler<AnalysisHandler>("analysis");
        using var host = builder.Build();
        await host.StartAsync().WaitAsync(Wait);
        try
        {
            // The host's bus still works: its consumer gets what is published on it.
            await host.Services.GetRequiredService<IBus>().Publish(new Ping("hello"));
            Assert.Equal("hello", await host.Services.GetRequiredService<PingLog>().Received.Task.WaitAsync(Wait));

            // And LaneQueue runs tasks, with the typed handler.
            await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = vhost.Url });
            var result = await producer.SubmitAndWaitAsync(
                ExternalTask.Create("analysis-1", SessionLane.Generate, new { prompt = "sales", depth = 2 }, "analysis"), Wait);
            Assert.True(result.Success, result.Error);
            Assert.Equal("sales at depth 2", result.Result.GetProperty("summary").GetString());
            Assert.Equal(1, result.Attempts);
        }
        finally
        {
            await host.StopAsync().WaitAsync(Wait);
        }
    }

    [Fact]
    public async Task AddMassTransit_after_AddLaneQueueConsumer_fails_the_start_saying_which_order_works()
    {
        await using var vhost = await broker.CreateVhostAsync();
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.AddLaneQueueConsumer(o => o.RabbitMqUrl = vhost.Url);
        builder.Services.AddMassTransit(x => x.UsingInMemory());
        using var host = builder.Build();
        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => host.StartAsync().WaitAsync(Wait));
        Assert.Contains("call services.AddMassTransit(...) first", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_payload_that_does_not_fit_the_typed_handler_is_dead_lettered_at_once_with_the_reason()
    {
        await using var vhost = await broker.CreateVhostAsync();
        var consumer = await ConsumerHost.StartAsync(vhost.Url, handlers: h => h.AddHandler<AnalysisHandler>("analysis"));
        try
        {
            await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = vhost.Url });
            var result = await producer.SubmitAndWaitAsync(
                ExternalTask.Create("misfit-1", SessionLane.Execute, new { prompt = "x", depth = "deep" }, "analysis"), Wait);

            Assert.False(result.Success);
            Assert.Equal(TaskStatuses.Failed, result.Status);
            Assert.Equal(1, result.Attempts); // not retried: it can never fit
            Assert.StartsWith("payload: does not fit AnalysisRequest", result.Error, StringComparison.Ordinal);
            await TestVhost.EventuallyAsync(async () => await vhost.ReadyAsync(TestVhost.DeadLetters(SessionLane.Execute)) == 1, "the dead letter");
            var letter = Assert.Single(await producer.DeadLetters.ListAsync(TestVhost.DeadLetters(SessionLane.Execute)));
            Assert.Contains("payload: does not fit AnalysisRequest", letter.Reason, StringComparison.Ordinal);

            var missing = await producer.SubmitAndWaitAsync(ExternalTask.Create("misfit-2", SessionLane.Execute, new { depth = 1 }, "analysis"), Wait);
            Assert.Equal(TaskStatuses.Failed, missing.Status);
            Assert.StartsWith("payload: does not fit AnalysisRequest", missing.Error, StringComparison.Ordinal);
        }
        finally
        {
            await consumer.StopQuietlyAsync();
        }
    }

    [Fact]
    public void A_handler_type_that_is_no_handler_is_refused_at_registration()
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        var ex = Assert.Throws<ArgumentException>(() => builder.AddLaneQueueConsumer().AddHandler<PingLog>("nope"));
        Assert.Contains("must implement ITaskHandler", ex.Message, StringComparison.Ordinal);
    }
}
