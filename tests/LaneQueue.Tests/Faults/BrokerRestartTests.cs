using LaneQueue.Tests.Broker;
using Xunit.Abstractions;

namespace LaneQueue.Tests.Faults;

/// <summary>The broker restarts under load: producers and consumers ride it out by themselves.</summary>
[Collection(FaultCollection.Name)]
public sealed class BrokerRestartTests(FaultBrokerFixture broker, ITestOutputHelper output) : FaultTest(broker, "lq-restart")
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Every_confirmed_task_completes_across_a_broker_restart(bool killBroker)
    {
        var url = Node.Url(Vhost);
        Consumers.Add(await ConsumerProcess.StartAsync(url, "consumer-a"));
        Consumers.Add(await ConsumerProcess.StartAsync(url, "consumer-b"));
        await using var tally = await ResultTally.StartAsync(url);
        await using var load = await ProducerLoad.StartAsync(url, tally, killBroker ? "crash" : "restart", producers: 2, perProducer: 250, pace: TimeSpan.FromMilliseconds(20));

        await ConsumerKillTests.WaitUntilAsync(() => load.Submitted >= 100, TimeSpan.FromSeconds(60), "100 tasks submitted before the restart");
        output.WriteLine($"{DateTime.UtcNow:HH:mm:ss} {(killBroker ? "kill -9 of" : "graceful stop of")} the broker at {load}; {tally.Count()}");
        if (killBroker)
            await Node.KillAsync();
        else
            await Node.StopAsync();
        await Task.Delay(TimeSpan.FromSeconds(3));
        await Node.StartAgainAsync();
        output.WriteLine($"{DateTime.UtcNow:HH:mm:ss} broker back at {load}");

        await load.Completion.WaitAsync(TimeSpan.FromSeconds(180));
        var counts = await tally.WaitForAllAsync(TimeSpan.FromSeconds(120), output.WriteLine);
        var report = $"{counts}; producers: {load}; non-persistent results: {tally.TransientResults}";
        output.WriteLine(report);
        foreach (var consumer in Consumers)
            Assert.False(consumer.HasExited, $"consumer {consumer.Name} exited ({consumer.ExitCode}):\n{ConsumerKillTests.Tail(consumer.Output)}");
        if (counts.Lost > 0)
            output.WriteLine("consumer logs: " + string.Join(", ", Consumers.Select(c => c.SaveOutput("restart"))));
        Evidence.Write($"fault-broker-{(killBroker ? "kill" : "restart")}", new
        {
            Fault = killBroker ? "kill -9 of the broker under load, started again 3 s later" : "graceful broker stop under load, started again 3 s later",
            Producers = 2,
            ConsumerProcesses = Consumers.Count,
            load.Planned,
            Confirmed = load.Submitted,
            FailedSubmits = load.Failed,
            counts.Accepted,
            counts.Completed,
            RanTwice = counts.Duplicated,
            counts.Lost,
            counts.CompletedUnconfirmed,
            NonPersistentResults = tally.TransientResults,
        }, report);
        Assert.True(counts.Lost == 0, $"lost:\n{tally.DescribeMissing()}\n{report}\n{await Node.QueuesAsync(Vhost)}\n" +
                                      string.Join("\n", Consumers.Select(c => $"--- {c.Name} ---\n{ConsumerKillTests.Tail(c.Output, 30)}")));
        // Every confirmed task completed (lost = 0 above); and the producers rode the restart out: every submit they were
        // asked to make was confirmed, none gave up (a submit waits up to 90 s for the broker to come back).
        Assert.Equal(counts.Accepted, counts.Completed);
        Assert.True(load.Failed == 0 && load.Submitted == load.Planned, $"every planned submit must be confirmed across the restart; {report}");
    }
}
