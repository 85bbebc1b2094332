using System.Text.Json;
using LaneQueue.Contracts;
using LaneQueue.Producer;
using MassTransit;

namespace LaneQueue.Sample;

/// <summary>
/// The README's example, end to end: while the generate lane is busy, a <c>background-analysis</c> task (generate) and then
/// an <c>urgent-query</c> task (query) are submitted; the query starts first. Prints one JSON line per result and a
/// verdict, sends a <see cref="Greeting"/> through the application's own MassTransit bus, then stops the application with
/// exit code 0 when everything came out right, 1 otherwise.
/// </summary>
public sealed class PriorityExample(
    ILaneQueueProducer producer,
    IBus bus,
    Greetings greetings,
    IHostApplicationLifetime lifetime,
    ILogger<PriorityExample> log) : BackgroundService
{
    static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        Environment.ExitCode = 1; // until the example has passed
        try
        {
            await WhenStartedAsync(stoppingToken); // LaneQueue's lanes and our bus are up
            var inOrder = await RunLanesAsync(stoppingToken);
            var consumed = await SendGreetingAsync(stoppingToken);
            Environment.ExitCode = inOrder && consumed ? 0 : 1;
        }
        catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
        {
            log.LogError(ex, "the example failed");
            Environment.ExitCode = 1;
        }
        finally
        {
            lifetime.StopApplication();
        }
    }

    async Task<bool> RunLanesAsync(CancellationToken cancellationToken)
    {
        // 1. Keep the generate lane busy: a 3-second analysis takes its one slot (SlotBudget 1 in appsettings.json).
        var blockerStarted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var blocker = await producer.WatchResultAsync("blocker", cancellationToken);
        await using (await producer.WatchEventsAsync(e =>
                     {
                         if (e.TaskId == "blocker")
                             blockerStarted.TrySetResult();
                         return Task.CompletedTask;
                     }, "command.started.generate", cancellationToken))
        {
            await producer.SubmitTaskAsync(
                ExternalTask.Create("blocker", SessionLane.Generate, new AnalysisRequest("long report", WorkMs: 3000), "analysis"), cancellationToken);
            await blockerStarted.Task.WaitAsync(Patience, cancellationToken);
        }

        // 2. Submit background work first, then an urgent query (start listening for their results before submitting).
        var background = await producer.WatchResultAsync("background-analysis", cancellationToken);
        var urgent = await producer.WatchResultAsync("urgent-query", cancellationToken);
        await producer.SubmitTaskAsync(
            ExternalTask.Create("background-analysis", SessionLane.Generate, new { prompt = "summarise last quarter's tickets" }, "analysis"), cancellationToken);
        await producer.SubmitTaskAsync(ExternalTask.Create("urgent-query", SessionLane.Query, new { q = "status" }), cancellationToken);

        // 3. One line per result, in the order they started.
        var results = await Task.WhenAll(blocker, background, urgent).WaitAsync(Patience, cancellationToken);
        foreach (var result in results.OrderBy(r => r.StartedAt))
        {
            Console.WriteLine(JsonSerializer.Serialize(new
            {
                task_id = result.TaskId,
                lane = result.Lane.WireName(),
                status = result.Status,
                started_at = result.StartedAt,
                consumer = result.Consumer,
            }));
        }

        var (backgroundResult, urgentResult) = (results[1], results[2]);
        var inOrder = results.All(r => r.Success) && urgentResult.StartedAt < backgroundResult.StartedAt;
        Console.WriteLine(JsonSerializer.Serialize(new { check = "urgent-query started before background-analysis", ok = inOrder }));
        return inOrder;
    }

    async Task<bool> SendGreetingAsync(CancellationToken cancellationToken)
    {
        await bus.Publish(new Greeting("hello from the sample"), cancellationToken);
        try
        {
            var received = await greetings.Received.Task.WaitAsync(TimeSpan.FromSeconds(30), cancellationToken);
            Console.WriteLine(JsonSerializer.Serialize(new { check = "own MassTransit consumer received Greeting", ok = true, text = received.Text }));
            return true;
        }
        catch (TimeoutException)
        {
            Console.WriteLine(JsonSerializer.Serialize(new { check = "own MassTransit consumer received Greeting", ok = false }));
            return false;
        }
    }

    async Task WhenStartedAsync(CancellationToken cancellationToken)
    {
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using (lifetime.ApplicationStarted.Register(() => started.TrySetResult()))
            await started.Task.WaitAsync(cancellationToken);
    }
}
