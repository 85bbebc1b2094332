using System.Diagnostics;
using System.Globalization;
using LaneQueue.Contracts;
using LaneQueue.Producer;
using LaneQueue.Tests.Broker;
using Xunit.Abstractions;

namespace LaneQueue.Tests.Faults;

/// <summary>
/// Soak: <c>LANEQUEUE_SOAK_TASKS</c> tasks (default 5,000; 100,000 for the full run) over all four lanes with random handler
/// times and two consumer processes: every task completes exactly once, and the consumers' memory stays flat. Gate settings
/// in the environment (<c>LaneQueue__Gate__*</c>) reach the consumer processes and name the evidence file.
/// </summary>
[Collection(FaultCollection.Name)]
public sealed class SoakTests(FaultBrokerFixture broker, ITestOutputHelper output) : FaultTest(broker, "lq-soak")
{
    public const string SizeVariable = "LANEQUEUE_SOAK_TASKS";
    const string GatePrefix = "LaneQueue__Gate__";

    [Fact]
    public async Task Every_task_of_a_long_run_completes_exactly_once_with_flat_memory()
    {
        var size = int.TryParse(Environment.GetEnvironmentVariable(SizeVariable), NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0 ? n : 5_000;
        // Gate settings the consumer processes take from this run's environment (e.g. LaneQueue__Gate__Mode=Strict),
        // named in the evidence so runs with other settings are told apart.
        var gate = Environment.GetEnvironmentVariables().Keys.Cast<string>()
            .Where(k => k.StartsWith(GatePrefix, StringComparison.OrdinalIgnoreCase))
            .Order(StringComparer.Ordinal)
            .Select(k => KeyValuePair.Create(k[GatePrefix.Length..], Environment.GetEnvironmentVariable(k)))
            .ToList();
        var url = Node.Url(Vhost);
        Consumers.Add(await ConsumerProcess.StartAsync(url, "soak-a"));
        Consumers.Add(await ConsumerProcess.StartAsync(url, "soak-b"));
        await using var tally = await ResultTally.StartAsync(url);
        await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = url });

        var clock = Stopwatch.StartNew();
        var samples = new List<(int Completed, double[] RssMiB)>();
        using var sampling = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!sampling.IsCancellationRequested)
            {
                lock (samples)
                    samples.Add((tally.CompletedCount, [.. Consumers.Select(c => c.RssMiB() ?? 0)]));
                try
                {
                    await Task.Delay(TimeSpan.FromSeconds(size >= 20_000 ? 10 : 2), sampling.Token);
                }
                catch (OperationCanceledException)
                {
                }
            }
        });

        var random = new Random(8);
        var submitted = 0;
        foreach (var chunk in Enumerable.Range(0, size).Chunk(200))
        {
            var tasks = chunk.Select(i => ExternalTask.Create($"soak-{i}", SessionLanes.All[random.Next(4)], new { ms = random.Next(0, 11) }, "sleep")).ToList();
            await Task.WhenAll(tasks.Select(t => producer.SubmitTaskAsync(t)));
            foreach (var task in tasks)
                tally.Accepted(task.Id);
            submitted += tasks.Count;
            // keep the backlog bounded (a few thousand), so the run measures the fleet, not one burst; a fleet that stops
            // completing tasks fails the test instead of holding it up
            var progressAt = Stopwatch.StartNew();
            var completedBefore = tally.CompletedCount;
            while (submitted - tally.CompletedCount > 5_000)
            {
                if (tally.CompletedCount != completedBefore)
                    (completedBefore, progressAt) = (tally.CompletedCount, Stopwatch.StartNew());
                Assert.True(progressAt.Elapsed < TimeSpan.FromMinutes(2),
                    $"no task completed for 2 minutes with {submitted - tally.CompletedCount} waiting ({tally.CompletedCount} of {submitted} completed)");
                await Task.Delay(50);
            }
        }
        var submitSeconds = clock.Elapsed.TotalSeconds;
        var counts = await tally.WaitForAllAsync(TimeSpan.FromSeconds(Math.Max(120, size / 50)), line => output.WriteLine(line));
        var seconds = clock.Elapsed.TotalSeconds;
        await sampling.CancelAsync();
        await sampler;

        double[] at(double fraction)
        {
            lock (samples)
                return samples.FirstOrDefault(s => s.Completed >= size * fraction, samples[^1]).RssMiB;
        }
        var final = Consumers.Select(c => c.RssMiB() ?? 0).ToArray();
        string mem(double[] values) => string.Join("/", values.Select(v => v.ToString("0", CultureInfo.InvariantCulture)));
        var report = $"soak {size:N0} tasks: {counts}; {seconds:0} s ({size / seconds:0} tasks/s; submitted in {submitSeconds:0} s); " +
                     $"consumer RSS MiB (a/b) at 10% {mem(at(0.1))}, 50% {mem(at(0.5))}, 90% {mem(at(0.9))}, end {mem(final)}";
        output.WriteLine(report);
        Evidence.Write(string.Join("-", [$"soak-{size}", .. gate.Select(g => $"{g.Key}-{g.Value}")]), new
        {
            Tasks = size,
            ConsumerProcesses = Consumers.Count,
            GateSettings = gate.Count == 0 ? "defaults" : string.Join(", ", gate.Select(g => $"Gate:{g.Key}={g.Value}")),
            Seconds = Math.Round(seconds),
            TasksPerSecond = Math.Round(size / seconds),
            counts.Accepted,
            counts.Completed,
            RanTwice = counts.Duplicated,
            counts.Lost,
            RssMiB = new
            {
                At10Percent = at(0.1).Select(v => Math.Round(v)).ToArray(),
                At50Percent = at(0.5).Select(v => Math.Round(v)).ToArray(),
                At90Percent = at(0.9).Select(v => Math.Round(v)).ToArray(),
                End = final.Select(v => Math.Round(v)).ToArray(),
            },
            Asserted = "lost = 0, completed = tasks, ran twice = 0, each consumer's RSS at the end <= 1.5 x its RSS at 10 % + 64 MiB",
        }, report);

        Assert.True(counts.Lost == 0, $"lost:\n{tally.DescribeMissing()}\n{report}");
        Assert.Equal(size, counts.Completed);
        Assert.Equal(0, counts.Duplicated);
        foreach (var consumer in Consumers)
            Assert.False(consumer.HasExited, ConsumerKillTests.Tail(consumer.Output));
        // Flat: from 10% of the run to its end, no consumer grows by more than half again plus 64 MiB (the de-duplication
        // ledger keeps 10 minutes of task ids, up to 200,000; that and GC heap sizing are the expected growth).
        var early = at(0.1);
        for (var i = 0; i < final.Length; i++)
            Assert.True(final[i] <= early[i] * 1.5 + 64, $"consumer {Consumers[i].Name} grew from {early[i]:0} to {final[i]:0} MiB; {report}");
    }
}
