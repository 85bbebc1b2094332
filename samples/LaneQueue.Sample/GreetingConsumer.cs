using MassTransit;

namespace LaneQueue.Sample;

/// <summary>A message of the application's own, on its own MassTransit bus (nothing to do with LaneQueue's lanes).</summary>
public sealed record Greeting(string Text);

/// <summary>An ordinary MassTransit consumer; it hands what it receives to <see cref="Greetings"/>.</summary>
public sealed class GreetingConsumer(Greetings greetings, ILogger<GreetingConsumer> log) : IConsumer<Greeting>
{
    public Task Consume(ConsumeContext<Greeting> context)
    {
        log.LogInformation("MassTransit consumer received '{Text}'", context.Message.Text);
        greetings.Received.TrySetResult(context.Message);
        return Task.CompletedTask;
    }
}

/// <summary>Where the example waits for the greeting it sent.</summary>
public sealed class Greetings
{
    public TaskCompletionSource<Greeting> Received { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}
