using LaneQueue.Consumer;
using LaneQueue.Contracts;
using LaneQueue.Producer;
using LaneQueue.Tests.Broker;
using Microsoft.Extensions.Hosting;

namespace LaneQueue.Tests.Integration;

/// <summary>
/// A fleet of two LaneQueue consumers (two buses in this process) on a fresh vhost, recording every task start
/// in one sequence, and a producer. Each test class gets its own vhost.
/// </summary>
public abstract class FleetTest(BrokerFixture broker) : IAsyncLifetime
{
    protected const int Consumers = 2;
    protected const int SlotBudget = 4;
    protected static readonly string[] Names = ["consumer-0", "consumer-1"];

    protected abstract LaneTopology Topology { get; }

    protected TestVhost Vhost { get; private set; } = null!;
    protected LaneQueueProducer Producer { get; private set; } = null!;
    protected StartLog Log { get; } = new();
    protected List<IHost> Fleet { get; } = [];

    protected virtual void Configure(LaneQueueOptions options)
    {
    }

    protected virtual void ConfigureProducer(ProducerOptions options)
    {
    }

    public async Task InitializeAsync()
    {
        Vhost = await broker.CreateVhostAsync();
        for (var i = 0; i < Consumers; i++)
        {
            Fleet.Add(await ConsumerHost.StartAsync(Vhost.Url, o =>
            {
                o.Topology = Topology;
                o.SlotBudget = SlotBudget;
                Configure(o);
            }, h => h.AddHandler(StartLog.CommandType, Log.HandleAsync), name: Names[i]));
        }
        var producerOptions = new ProducerOptions { RabbitMqUrl = Vhost.Url, Topology = Topology };
        ConfigureProducer(producerOptions);
        Producer = await LaneQueueProducer.ConnectAsync(producerOptions);
    }

    public async Task DisposeAsync()
    {
        await Producer.DisposeAsync();
        foreach (var host in Fleet)
            await host.StopQuietlyAsync();
        await Vhost.DisposeAsync();
    }

    protected async Task SubmitAsync(IEnumerable<ExternalTask> tasks)
    {
        foreach (var chunk in tasks.Chunk(50))
            await Task.WhenAll(chunk.Select(t => Producer.SubmitTaskAsync(t)));
    }

    protected static IEnumerable<ExternalTask> Backlog(string prefix, SessionLane lane, int count, int ms) =>
        Enumerable.Range(1, count).Select(i => StartLog.Make($"{prefix}-{i}", lane, ms));

    protected async Task WaitForStartsAsync(SessionLane lane, int count) =>
        await TestVhost.EventuallyAsync(() => Task.FromResult(Log.StartedIn(lane) >= count), $"{count} {lane} tasks started");

    protected async Task<StartLog.Entry> StartOfAsync(string id, int timeoutSeconds = 60)
    {
        await TestVhost.EventuallyAsync(() => Task.FromResult(Log.StartOf(id) is not null), $"task {id} started", timeoutSeconds);
        return Log.StartOf(id)!;
    }
}
