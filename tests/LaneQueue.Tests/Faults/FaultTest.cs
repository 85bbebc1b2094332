namespace LaneQueue.Tests.Faults;

/// <summary>
/// A test on the fault collection's broker node (<see cref="FaultBrokerFixture"/>) with a vhost of its own and the consumer
/// processes it starts: every process is stopped and the vhost deleted when the test ends, whatever its outcome.
/// </summary>
public abstract class FaultTest(FaultBrokerFixture broker, string vhostPrefix) : IAsyncLifetime
{
    /// <summary>The broker node the fault collection starts (restart it, cut it off, read its management API).</summary>
    protected FaultNode Node => broker.Node;

    /// <summary>This test's vhost.</summary>
    protected string Vhost { get; private set; } = "";

    /// <summary>The consumer processes to stop when the test ends.</summary>
    protected List<ConsumerProcess> Consumers { get; } = [];

    public async Task InitializeAsync() => Vhost = await broker.Node.CreateVhostAsync(vhostPrefix);

    public async Task DisposeAsync()
    {
        foreach (var consumer in Consumers)
            await consumer.DisposeAsync();
        await broker.Node.DeleteVhostAsync(Vhost);
    }
}
