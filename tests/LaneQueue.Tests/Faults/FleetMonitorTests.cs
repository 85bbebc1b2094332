using System.Diagnostics;
using LaneQueue.Contracts;
using LaneQueue.Producer;
using LaneQueue.Tests.Broker;
using Xunit.Abstractions;

namespace LaneQueue.Tests.Faults;

/// <summary>
/// One consumer of the fleet (the monitor, elected on a single-active-consumer queue) reads the lane depths and broadcasts
/// the lane states. kill -9 of the monitor process: the broker hands the election token to another consumer, which takes
/// over, and the fleet's gate keeps working.
/// </summary>
[Collection(FaultCollection.Name)]
public sealed class FleetMonitorTests(FaultBrokerFixture broker, ITestOutputHelper output) : FaultTest(broker, "lq-monitor")
{
    const string Elected = "is the fleet monitor";
    [Fact]
    public async Task Killing_the_fleet_monitor_hands_the_lane_gate_to_another_consumer()
    {
        var url = Node.Url(Vhost);
        foreach (var name in new[] { "m-a", "m-b", "m-c" })
            Consumers.Add(await ConsumerProcess.StartAsync(url, name));
        await ConsumerKillTests.WaitUntilAsync(() => Consumers.Count(c => c.Output.Contains(Elected, StringComparison.Ordinal)) == 1,
            TimeSpan.FromSeconds(60), "one consumer elected monitor");
        var monitor = Consumers.Single(c => c.Output.Contains(Elected, StringComparison.Ordinal));
        var survivors = Consumers.Where(c => c != monitor).ToList();

        var clock = Stopwatch.StartNew();
        monitor.KillHard();
        await ConsumerKillTests.WaitUntilAsync(() => survivors.Any(c => c.Output.Contains(Elected, StringComparison.Ordinal)),
            TimeSpan.FromSeconds(60), "another consumer elected monitor after the kill");
        var handover = clock.Elapsed;
        var successor = survivors.Single(c => c.Output.Contains(Elected, StringComparison.Ordinal));
        output.WriteLine($"killed monitor {monitor.Name} (pid {monitor.Pid}); {successor.Name} took over after {handover.TotalMilliseconds:0} ms");

        // The gate under the new monitor: query tasks wait (query paused by an operator), so every survivor stops generate.
        await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = url });
        var generate = BrokerNames.LaneQueue(SessionLane.Generate);
        await WaitForConsumersAsync(generate, survivors.Count, "both survivors consume generate");
        await producer.PauseLaneAsync(SessionLane.Query);
        foreach (var i in Enumerable.Range(1, 3))
            await producer.SubmitTaskAsync(ExternalTask.Create($"held-{i}", SessionLane.Query));
        clock.Restart();
        await WaitForConsumersAsync(generate, 0, "every survivor held generate behind the waiting queries");
        var held = clock.Elapsed;
        await producer.ResumeLaneAsync(SessionLane.Query);
        await WaitForConsumersAsync(generate, survivors.Count, "generate resumed once the queries ran");

        var report = $"handover {handover.TotalMilliseconds:0} ms to {successor.Name}; generate held on both survivors {held.TotalMilliseconds:0} ms after the queries were published";
        output.WriteLine(report);
        Evidence.Write("fault-monitor-kill", new
        {
            Fault = "kill -9 of the fleet monitor process (3 consumer processes)",
            HandoverMs = Math.Round(handover.TotalMilliseconds),
            GenerateHeldOnEverySurvivorAfterMs = Math.Round(held.TotalMilliseconds),
        }, report);
        // Generous: the claim is "a few seconds"; kill -9 closes the socket, so the broker hands over at once.
        Assert.True(handover < TimeSpan.FromSeconds(15), report);
    }

    async Task WaitForConsumersAsync(string queue, int consumers, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            var run = await Node.CtlAsync("list_queues", "-p", Vhost, "--no-table-headers", "name", "consumers");
            var line = run.Output.Split('\n').Select(l => l.Split('\t', StringSplitOptions.TrimEntries)).FirstOrDefault(f => f.Length == 2 && f[0] == queue);
            if (line is not null && int.TryParse(line[1], out var n) && n == consumers)
                return;
            if (DateTime.UtcNow > deadline)
                Assert.Fail($"timed out waiting for: {what} ({queue}: {line?[1] ?? "?"} consumers)\n--- {string.Join("\n--- ", Consumers.Select(c => c.Name + "\n" + ConsumerKillTests.Tail(c.Output, 15)))}");
            await Task.Delay(100);
        }
    }
}
