using LaneQueue.Contracts;
using LaneQueue.Tests.Broker;
using Xunit.Abstractions;

namespace LaneQueue.Tests.Faults;

/// <summary>
/// The network between one consumer and the broker goes silent for longer than the heartbeat (bytes dropped, sockets
/// left open), then heals. The broker gives the cut consumer's unacked tasks to the other consumer; the cut one
/// reconnects by itself and works again.
/// </summary>
[Collection(FaultCollection.Name)]
public sealed class NetworkCutTests(FaultBrokerFixture broker, ITestOutputHelper output) : FaultTest(broker, "lq-cut")
{
    static readonly TimeSpan CutFor = TimeSpan.FromSeconds(30); // heartbeat 10 s: both sides give up after ~20 s

    [Fact]
    public async Task A_consumer_cut_off_longer_than_the_heartbeat_loses_nothing_and_comes_back()
    {
        await using var proxy = new TcpProxy(Node.Port);
        var direct = Node.Url(Vhost);
        var throughProxy = direct.Replace($":{Node.Port}/", $":{proxy.Port}/", StringComparison.Ordinal);
        var cut = await ConsumerProcess.StartAsync(throughProxy, "cut-off");
        Consumers.Add(cut);
        Consumers.Add(await ConsumerProcess.StartAsync(direct, "connected"));
        await using var tally = await ResultTally.StartAsync(direct);
        await using var load = await ProducerLoad.StartAsync(direct, tally, "cut", producers: 2, perProducer: 400, pace: TimeSpan.FromMilliseconds(100), maxTaskMs: 300);

        await ConsumerKillTests.WaitUntilAsync(() => tally.StartedBy("cut-off").Count() >= 10, TimeSpan.FromSeconds(60), "the cut-off consumer runs tasks");
        proxy.Cut();
        var cutAt = DateTimeOffset.UtcNow;
        output.WriteLine($"{cutAt:HH:mm:ss} network cut at {load}; {tally.Count()}");
        await Task.Delay(CutFor);
        proxy.Restore();
        var restoredAt = DateTimeOffset.UtcNow;
        output.WriteLine($"{restoredAt:HH:mm:ss} network restored at {load}; {tally.Count()}");

        // The cut consumer reconnects by itself and completes tasks again.
        await ConsumerKillTests.WaitUntilAsync(() => tally.AcceptedIds.Any(id => tally.ResultsOf(id).Any(r =>
            r.Consumer == "cut-off" && r.Status == TaskStatuses.Completed && r.StartedAt > restoredAt)), TimeSpan.FromSeconds(90),
            "the cut-off consumer completing a task after the network healed");
        await load.Completion.WaitAsync(TimeSpan.FromSeconds(180));
        var counts = await tally.WaitForAllAsync(TimeSpan.FromSeconds(120), output.WriteLine);
        var afterCut = tally.AcceptedIds.Count(id => tally.ResultsOf(id).Any(r => r.Consumer == "cut-off" && r.Status == TaskStatuses.Completed && r.StartedAt > restoredAt));
        var report = $"{counts}; producers: {load}; completed by the cut-off consumer after the network healed: {afterCut}";
        output.WriteLine(report);
        if (counts.Lost > 0)
            output.WriteLine("consumer logs: " + string.Join(", ", Consumers.Select(c => c.SaveOutput("cut"))));
        Evidence.Write("fault-network-cut", new
        {
            Fault = $"network between one consumer process and the broker silent for {CutFor.TotalSeconds:0} s (bytes dropped, sockets open; heartbeat 10 s)",
            Producers = 2,
            ConsumerProcesses = Consumers.Count,
            load.Planned,
            Confirmed = load.Submitted,
            FailedSubmits = load.Failed,
            counts.Accepted,
            counts.Completed,
            RanTwice = counts.Duplicated,
            counts.Lost,
            CompletedByTheCutConsumerAfterHealing = afterCut,
        }, report);
        Assert.True(counts.Lost == 0, $"lost:\n{tally.DescribeMissing()}\n{report}\n{await Node.QueuesAsync(Vhost)}");
        Assert.Equal(counts.Accepted, counts.Completed);
        // The producers talk to the broker directly: the cut must not cost them a single submit.
        Assert.True(load.Failed == 0 && load.Submitted == load.Planned, $"every planned submit must be confirmed; {report}");
        Assert.True(afterCut > 0, $"the cut-off consumer must complete tasks after the network healed; {report}");
        Assert.False(cut.HasExited, ConsumerKillTests.Tail(cut.Output));
    }
}
