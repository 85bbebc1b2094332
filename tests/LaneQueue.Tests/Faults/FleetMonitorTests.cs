using System.Diagnostics;
using LaneQueue.Contracts;
using LaneQueue.Producer;
using LaneQueue.Tests.Broker;
using Xunit.Abstractions;

namespace LaneQueue.Tests.Faults;

/// <summary>
/// One consumer of the fleet (the monitor, elected on a single-active-consumer queue) reads the lane depths and broadcasts
/// them to every consumer's scheduler. kill -9 of the monitor process: the broker hands the election token to another
/// consumer, which takes over and reads the depths for the fleet (its lane event for a lane that fills up is the proof).
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
            Consumers.Add(await ConsumerProcess.StartAsync(url, name, ["--LaneQueue:Queue:PressureThreshold=3"]));
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

        // The new monitor reads the depths: query tasks wait (query paused by an operator), and it raises lane.pressure.
        await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = url });
        await using var connection = await new RabbitMQ.Client.ConnectionFactory { Uri = new Uri(url) }.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        var watch = (await channel.QueueDeclareAsync("", durable: false, exclusive: true, autoDelete: true)).QueueName;
        await channel.QueueBindAsync(watch, BrokerNames.EventsExchange, "lane.pressure.#");
        await producer.PauseLaneAsync(SessionLane.Query);
        await WaitForConsumersAsync(BrokerNames.LaneQueue(SessionLane.Query), 0, "both survivors paused query");
        clock.Restart();
        foreach (var i in Enumerable.Range(1, 3))
            await producer.SubmitTaskAsync(ExternalTask.Create($"waiting-{i}", SessionLane.Query));
        await ConsumerKillTests.WaitUntilAsync(() => channel.BasicGetAsync(watch, autoAck: true).GetAwaiter().GetResult() is not null,
            TimeSpan.FromSeconds(60), "lane.pressure for query from the new monitor");
        var read = clock.Elapsed;
        await producer.ResumeLaneAsync(SessionLane.Query);

        var report = $"handover {handover.TotalMilliseconds:0} ms to {successor.Name}; the new monitor raised lane.pressure for query {read.TotalMilliseconds:0} ms after the third task was submitted";
        output.WriteLine(report);
        Evidence.Write("fault-monitor-kill", new
        {
            Fault = "kill -9 of the fleet monitor process (3 consumer processes)",
            HandoverMs = Math.Round(handover.TotalMilliseconds),
            PressureRaisedByTheNewMonitorAfterMs = Math.Round(read.TotalMilliseconds),
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
