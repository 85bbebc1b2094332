using System.Diagnostics;
using LaneQueue.Tests.Broker;
using Xunit.Abstractions;

namespace LaneQueue.Tests.Faults;

/// <summary>
/// A broker that stops confirming (here: a memory alarm blocks every publisher) never makes a submit hang: it fails within
/// the producer's recovery timeout (TaskRejectedException saying so, inner TimeoutException), and the same producer submits again once the broker is back.
/// The same bound covers RabbitMQ.Client 7.2's wait for ever on a confirm lost in a connection recovery
/// (rabbitmq-dotnet-client#1930), which once held a producer of the cluster test for minutes.
/// </summary>
[Collection(FaultCollection.Name)]
public sealed class BlockedBrokerTests(FaultBrokerFixture broker, ITestOutputHelper output) : IAsyncLifetime
{
    string _vhost = "";

    public async Task InitializeAsync() => _vhost = await broker.Node.CreateVhostAsync("lq-blocked");

    public async Task DisposeAsync()
    {
        await broker.Node.CtlAsync("set_vm_memory_high_watermark", "0.4");
        await broker.Node.DeleteVhostAsync(_vhost);
    }

    [Fact]
    public async Task A_submit_to_a_broker_that_does_not_confirm_fails_within_the_recovery_timeout_and_the_producer_goes_on_afterwards()
    {
        await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions
        {
            RabbitMqUrl = broker.Node.Url(_vhost),
            RecoveryTimeout = TimeSpan.FromSeconds(4),
        });
        await producer.SubmitTaskAsync(ExternalTask.Create("before-alarm", SessionLane.Query));

        var alarm = await broker.Node.CtlAsync("set_vm_memory_high_watermark", "0.0000001"); // every publisher blocked
        Assert.True(alarm.ExitCode == 0, alarm.Output);
        var clock = Stopwatch.StartNew();
        var refused = await Assert.ThrowsAsync<TaskRejectedException>(() => producer.SubmitTaskAsync(ExternalTask.Create("during-alarm", SessionLane.Query)));
        output.WriteLine($"failed after {clock.ElapsedMilliseconds} ms: {refused.Message}");
        Assert.IsType<TimeoutException>(refused.InnerException);
        Assert.Contains("has not been reachable for 4 s", refused.Message, StringComparison.Ordinal);
        Assert.Contains("submit it again with the same id", refused.Message, StringComparison.Ordinal);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"the submit should fail near its 4 s recovery timeout, took {clock.Elapsed}");

        var cleared = await broker.Node.CtlAsync("set_vm_memory_high_watermark", "0.4");
        Assert.True(cleared.ExitCode == 0, cleared.Output);
        await TestVhost.EventuallyAsync(async () =>
        {
            try
            {
                await producer.SubmitTaskAsync(ExternalTask.Create("after-alarm", SessionLane.Query));
                return true;
            }
            catch (TaskRejectedException)
            {
                return false; // the alarm clears at the broker's next memory check
            }
        }, "a submit after the alarm cleared");
    }
}
