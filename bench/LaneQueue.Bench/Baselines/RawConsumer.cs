using System.Diagnostics;
using System.Text.Json;
using LaneQueue.Contracts;
using LaneQueue.Producer;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace LaneQueue.Bench.Baselines;

/// <summary>
/// The throughput baseline: a plain RabbitMQ.Client 7 consumer of one durable queue with manual acks and the given
/// prefetch. Without <c>--results</c> it only acks each delivery (the client's default dispatch concurrency, 1);
/// with it, it also publishes a result with a publisher confirm before acking (as LaneQueue does), dispatching
/// <c>prefetch</c> deliveries at once. Prints "ready" and, each time the number of acked deliveries reaches one of
/// <c>--expect</c>'s comma-separated counts, "done &lt;count&gt; &lt;unix ms&gt;".
/// </summary>
public static class RawConsumer
{
    public static async Task<int> RunAsync(string url, string queue, ushort prefetch, IReadOnlyCollection<long> milestones, bool results, CancellationToken cancellationToken)
    {
        await using var connection = await BrokerConnection.ConnectAsync(url, "lanequeue-bench-raw-consumer", cancellationToken);
        await using var channel = await connection.CreateChannelAsync(
            new CreateChannelOptions(false, false, consumerDispatchConcurrency: results ? prefetch : (ushort)1), cancellationToken);
        await using var resultsChannel = await connection.CreateChannelAsync(
            new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true), cancellationToken);
        await BrokerTopology.DeclareAsync(resultsChannel, cancellationToken);
        await channel.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false, cancellationToken: cancellationToken);
        await channel.BasicQosAsync(0, prefetch, false, cancellationToken);
        long count = 0;
        var consumer = new AsyncEventingBasicConsumer(channel);
        consumer.ReceivedAsync += async (_, delivery) =>
        {
            var started = DateTimeOffset.UtcNow;
            if (results)
            {
                using var json = JsonDocument.Parse(delivery.Body);
                var id = json.RootElement.GetProperty("id").GetString()!;
                var body = JsonSerializer.SerializeToUtf8Bytes(new
                {
                    task_id = id,
                    lane = json.RootElement.GetProperty("lane").GetString(),
                    success = true,
                    status = "completed",
                    result = json.RootElement.GetProperty("payload"),
                    consumer = "raw",
                    started_at = started,
                    finished_at = DateTimeOffset.UtcNow,
                });
                await resultsChannel.BasicPublishAsync(BrokerNames.ResultsExchange, id, false,
                    new BasicProperties { Persistent = true, ContentType = "application/json" }, body, cancellationToken);
            }
            await channel.BasicAckAsync(delivery.DeliveryTag, multiple: false, cancellationToken);
            var n = Interlocked.Increment(ref count);
            // "done <n> <unix ms>" when the count of acked deliveries reaches a milestone (the end of a phase).
            if (milestones.Contains(n))
                Console.WriteLine($"done {n} {DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()}");
        };
        await channel.BasicConsumeAsync(queue, autoAck: false, consumer, cancellationToken);
        Console.WriteLine("ready");
        var clock = Stopwatch.StartNew();
        while (!cancellationToken.IsCancellationRequested)
        {
            await Task.Delay(1000, cancellationToken).ContinueWith(_ => { }, TaskScheduler.Default);
            Console.WriteLine($"stats consumed={Interlocked.Read(ref count)} t={clock.Elapsed.TotalSeconds:0}");
        }
        return 0;
    }
}
