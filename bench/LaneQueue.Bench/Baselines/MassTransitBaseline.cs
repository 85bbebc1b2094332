using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Serialization;
using MassTransit;

namespace LaneQueue.Bench.Baselines;

/// <summary>The task JSON as the baseline consumer reads it (raw JSON, no MassTransit envelope).</summary>
public sealed class BaselineTask
{
    [JsonPropertyName("id")]
    public string Id { get; set; } = "";

    [JsonPropertyName("lane")]
    public string Lane { get; set; } = "";

    [JsonPropertyName("command_type")]
    public string? CommandType { get; set; }

    [JsonPropertyName("payload")]
    public JsonElement Payload { get; set; }
}

/// <summary>The same result JSON a LaneQueue consumer publishes, so one listener reads both.</summary>
public sealed class BaselineResult
{
    [JsonPropertyName("task_id")]
    public string TaskId { get; set; } = "";

    [JsonPropertyName("lane")]
    public string Lane { get; set; } = "";

    [JsonPropertyName("success")]
    public bool Success { get; set; } = true;

    [JsonPropertyName("status")]
    public string Status { get; set; } = "completed";

    [JsonPropertyName("consumer")]
    public string Consumer { get; set; } = "";

    [JsonPropertyName("started_at")]
    public DateTimeOffset StartedAt { get; set; }

    [JsonPropertyName("finished_at")]
    public DateTimeOffset FinishedAt { get; set; }
}

/// <summary>
/// Baseline (c) and (d) of the preemption scenario: a minimal MassTransit 8 consumer of raw JSON tasks from one queue,
/// with MassTransit's defaults (PrefetchCount = max(2 x CPU, 16), ConcurrentMessageLimit = prefetch) unless
/// <c>--prefetch</c> sets both (the throughput scenario, to compare at equal prefetch) or <c>--concurrency</c> sets the
/// concurrent message limit alone. With
/// <c>--max-priority N</c> the queue is declared with x-max-priority (MassTransit's <c>EnablePriority</c>).
/// The handler waits <c>payload.ms</c> (the same stand-in as LaneQueue's sleep handler) and publishes a result.
/// Prints "ready" once the bus runs and "stats ..." every second.
/// </summary>
public static class MassTransitBaseline
{
    static readonly Uri ResultsAddress = new("exchange:lanequeue.results?type=topic&durable=true&autodelete=false");

    public static async Task<int> RunAsync(string url, string queue, byte? maxPriority, string name, int? prefetchCount, int? concurrencyLimit, CancellationToken cancellationToken)
    {
        var running = 0;
        var maxRunning = 0;
        long consumed = 0;
        int? prefetch = null;
        int? concurrency = null;
        var bus = Bus.Factory.CreateUsingRabbitMq(cfg =>
        {
            var uri = new Uri(url);
            var vhost = Uri.UnescapeDataString(uri.AbsolutePath.Trim('/')) is { Length: > 0 } v ? v : "/";
            var credentials = uri.UserInfo.Split(':', 2);
            cfg.Host(uri.Host, (ushort)(uri.IsDefaultPort ? 5672 : uri.Port), vhost, name, h =>
            {
                h.Username(Uri.UnescapeDataString(credentials[0]));
                h.Password(Uri.UnescapeDataString(credentials.Length > 1 ? credentials[1] : ""));
            });
            cfg.UseRawJsonSerializer(RawSerializerOptions.AnyMessageType, isDefault: true);
            cfg.ReceiveEndpoint(queue, e =>
            {
                e.ConfigureConsumeTopology = false;
                if (maxPriority is { } levels)
                    e.EnablePriority(levels);
                if (prefetchCount is { } set)
                {
                    // Only for the throughput scenario, to match the other variants' prefetch; the preemption baselines keep the defaults.
                    e.PrefetchCount = set;
                    e.ConcurrentMessageLimit = set;
                }
                if (concurrencyLimit is { } limit)
                    e.ConcurrentMessageLimit = limit; // MassTransit's documented way to run fewer messages at once than it prefetches
                prefetch = e.PrefetchCount;
                concurrency = e.ConcurrentMessageLimit;
                e.Handler<BaselineTask>(async context =>
                {
                    var started = DateTimeOffset.UtcNow;
                    var now = Interlocked.Increment(ref running);
                    int seen;
                    while (now > (seen = Volatile.Read(ref maxRunning)) && Interlocked.CompareExchange(ref maxRunning, now, seen) != seen)
                    {
                    }
                    try
                    {
                        var task = context.Message;
                        if (task.Payload.ValueKind == JsonValueKind.Object && task.Payload.TryGetProperty("ms", out var ms) && ms.TryGetInt32(out var delay) && delay > 0)
                            await Task.Delay(delay, context.CancellationToken);
                        var endpoint = await context.GetSendEndpoint(ResultsAddress);
                        await endpoint.Send(new BaselineResult
                        {
                            TaskId = task.Id,
                            Lane = task.Lane,
                            Consumer = name,
                            StartedAt = started,
                            FinishedAt = DateTimeOffset.UtcNow,
                        }, s => s.SetRoutingKey(task.Id), context.CancellationToken);
                    }
                    finally
                    {
                        Interlocked.Decrement(ref running);
                        Interlocked.Increment(ref consumed);
                    }
                });
            });
        });

        using var start = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        start.CancelAfter(TimeSpan.FromSeconds(60));
        await bus.StartAsync(start.Token);
        try
        {
            Console.WriteLine($"ready prefetch={prefetch?.ToString() ?? "default"} concurrency={concurrency?.ToString() ?? "default"} cpus={Environment.ProcessorCount}");
            var clock = Stopwatch.StartNew();
            while (!cancellationToken.IsCancellationRequested)
            {
                await Task.Delay(1000, cancellationToken).ContinueWith(_ => { }, TaskScheduler.Default);
                Console.WriteLine($"stats consumed={Interlocked.Read(ref consumed)} max_concurrent={Volatile.Read(ref maxRunning)} t={clock.Elapsed.TotalSeconds:0}");
            }
        }
        finally
        {
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await bus.StopAsync(stop.Token);
        }
        return 0;
    }
}
