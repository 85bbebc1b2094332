using System.CommandLine;
using LaneQueue.Contracts;
using LaneQueue.Producer;

namespace LaneQueue.Cli;

/// <summary>Runs a command's body with a connected producer, turning the known failures into clear messages and exit codes.</summary>
static class CliRun
{
    public static Task<int> WithProducerAsync(ParseResult parse, CancellationToken cancellationToken, Func<LaneQueueProducer, TextWriter, Task<int>> body) =>
        ReportingErrorsAsync(parse, async () =>
        {
            await using var producer = await LaneQueueProducer.ConnectAsync(CliProducerOptions.From(parse), cancellationToken);
            return await body(producer, parse.InvocationConfiguration.Output);
        });

    /// <summary>Runs <paramref name="body"/>, turning the known failures into an <c>error: ...</c> line and the exit code that says which.</summary>
    public static async Task<int> ReportingErrorsAsync(ParseResult parse, Func<Task<int>> body)
    {
        var errors = parse.InvocationConfiguration.Error;
        try
        {
            return await body();
        }
        catch (InvalidTaskException ex)
        {
            await errors.WriteLineAsync($"error: invalid task: {ex.Message}");
            return ProducerCli.InvalidInput;
        }
        catch (ArgumentException ex)
        {
            await errors.WriteLineAsync($"error: {ex.Message}");
            return ProducerCli.InvalidInput;
        }
        catch (TaskRejectedException ex)
        {
            await errors.WriteLineAsync($"error: {ex.Message}");
            return ProducerCli.Rejected;
        }
        catch (TimeoutException ex)
        {
            await errors.WriteLineAsync($"error: {ex.Message}");
            return ProducerCli.TimedOut;
        }
        catch (RabbitMQ.Client.Exceptions.OperationInterruptedException ex)
        {
            await errors.WriteLineAsync($"error: the broker refused the operation: {ex.ShutdownReason?.ReplyText ?? ex.Message}");
            return ProducerCli.Rejected;
        }
    }

    public static Option<string> LaneOption(bool required = true) =>
        new("--lane") { Description = $"Lane: {SessionLanes.NamesList}", Required = required };

    /// <summary>Parses <c>--lane</c>; null (after writing the error) when it is not a lane.</summary>
    public static SessionLane? Lane(ParseResult parse, Option<string> option)
    {
        var name = parse.GetValue(option);
        if (SessionLanes.TryParse(name, out var lane))
            return lane;
        parse.InvocationConfiguration.Error.WriteLine($"error: --lane '{name}' is not a lane; expected one of {SessionLanes.NamesList}");
        return null;
    }
}
