using LaneQueue.Consumer;
using LaneQueue.Producer;
using Microsoft.Extensions.Hosting;

namespace LaneQueue.Tests.Broker;

/// <summary>A test's fleet on its own vhost: in-process consumers and one producer, all stopped (and the vhost deleted) with the test.</summary>
public sealed class TestFleet(TestVhost vhost) : IAsyncDisposable
{
    public TestVhost Vhost { get; } = vhost;

    /// <summary>The consumers still running; a test that stops one itself removes it.</summary>
    public List<IHost> Hosts { get; } = [];

    /// <summary>Connected with the first consumer.</summary>
    public LaneQueueProducer Producer { get; private set; } = null!;

    public async Task<IHost> StartConsumerAsync(string name, Action<LaneQueueOptions>? configure = null, Action<LaneQueueConsumerBuilder>? handlers = null)
    {
        var host = await ConsumerHost.StartAsync(Vhost.Url, configure, handlers, name);
        Hosts.Add(host);
        Producer ??= await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = Vhost.Url });
        return host;
    }

    public async ValueTask DisposeAsync()
    {
        if (Producer is not null)
            await Producer.DisposeAsync();
        foreach (var host in Hosts)
            await host.StopQuietlyAsync();
        await Vhost.DisposeAsync();
    }
}
