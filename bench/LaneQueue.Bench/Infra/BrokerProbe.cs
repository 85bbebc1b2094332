using System.Collections.Concurrent;
using System.Diagnostics;
using LaneQueue.Producer;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace LaneQueue.Bench.Infra;

/// <summary>
/// A control measured beside a scenario: every <c>interval</c> a persistent message goes through the broker to a queue of its
/// own in the scenario's vhost (publish with confirm, pushed to a consumer with credit to spare, no LaneQueue code on the
/// way), and its publish → delivery time is kept. When it spikes, everything through that broker on this machine spiked
/// with it; a scenario's long waits at the same moments are the machine's, not the scheduler's.
/// </summary>
public sealed class BrokerProbe : IAsyncDisposable
{
    readonly ConcurrentQueue<(DateTimeOffset At, double Ms)> _latencies = new();
    readonly long _origin = Stopwatch.GetTimestamp();
    readonly DateTimeOffset _originAt = DateTimeOffset.UtcNow;
    readonly CancellationTokenSource _stop = new();
    IConnection _connection = null!;
    IChannel _publish = null!;
    IChannel _consume = null!;
    Task _loop = Task.CompletedTask;
    string _queue = "";

    public static async Task<BrokerProbe> StartAsync(string url, TimeSpan interval, CancellationToken cancellationToken)
    {
        var probe = new BrokerProbe();
        probe._connection = await BrokerConnection.ConnectAsync(url, "lanequeue-bench-probe", cancellationToken);
        probe._publish = await probe._connection.CreateChannelAsync(
            new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true), cancellationToken);
        probe._consume = await probe._connection.CreateChannelAsync(cancellationToken: cancellationToken);
        probe._queue = (await probe._consume.QueueDeclareAsync($"bench.probe.{Guid.NewGuid():N}", durable: true, exclusive: false,
            autoDelete: false, cancellationToken: cancellationToken)).QueueName;
        var consumer = new AsyncEventingBasicConsumer(probe._consume);
        consumer.ReceivedAsync += (_, delivery) =>
        {
            if (long.TryParse(System.Text.Encoding.ASCII.GetString(delivery.Body.Span), out var sent))
                probe._latencies.Enqueue((probe._originAt + Stopwatch.GetElapsedTime(probe._origin, sent), Stopwatch.GetElapsedTime(sent).TotalMilliseconds));
            return Task.CompletedTask;
        };
        await probe._consume.BasicConsumeAsync(probe._queue, autoAck: true, consumer, cancellationToken);
        probe._loop = probe.RunAsync(interval);
        return probe;
    }

    async Task RunAsync(TimeSpan interval)
    {
        var properties = new BasicProperties { Persistent = true };
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                var body = System.Text.Encoding.ASCII.GetBytes(Stopwatch.GetTimestamp().ToString(System.Globalization.CultureInfo.InvariantCulture));
                await _publish.BasicPublishAsync("", _queue, mandatory: false, properties, body, _stop.Token);
                await Task.Delay(interval, _stop.Token);
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
        }
    }

    /// <summary>Stops publishing, waits a moment for the last deliveries, and returns every publish's time and its publish → delivery time (ms).</summary>
    public async Task<IReadOnlyList<(DateTimeOffset At, double Ms)>> StopAsync()
    {
        await _stop.CancelAsync();
        await _loop;
        await Task.Delay(200);
        return [.. _latencies];
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _loop;
        try
        {
            await _consume.QueueDeleteAsync(_queue);
        }
        catch (Exception ex) when (ex is RabbitMQ.Client.Exceptions.OperationInterruptedException or RabbitMQ.Client.Exceptions.AlreadyClosedException)
        {
            // the vhost goes with the scenario anyway
        }
        await _consume.DisposeAsync();
        await _publish.DisposeAsync();
        await _connection.DisposeAsync();
        _stop.Dispose();
    }
}
