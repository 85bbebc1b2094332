using System.CommandLine;
using LaneQueue.Cli;

namespace LaneQueue.Tests.Unit;

/// <summary>
/// Arguments the parser refuses exit with the documented code for invalid input (2), one <c>error:</c> line per problem
/// naming the option, and a pointer to the command's help; no broker is reached. They exited 1 with the whole help text,
/// and a wrong type was named as <c>System.Nullable`1[System.Int64]</c>.
/// </summary>
public class CliArgumentTests
{
    static async Task<(int Code, string Out, string Err)> RunAsync(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        // An address nothing answers at: a command that got as far as connecting would fail with 3, not 2.
        var code = await ProducerCli.RunAsync([.. args, "--url", "amqp://guest:guest@127.0.0.1:1/"], new InvocationConfiguration { Output = output, Error = error });
        return (code, output.ToString(), error.ToString());
    }

    [Theory]
    [InlineData("submit --id x", "error: Option '--lane' is required.", "see: lanequeue submit --help")]
    [InlineData("submit --lane query --bogus", "error: Unrecognized command or argument '--bogus'.", "see: lanequeue submit --help")]
    [InlineData("submit --lane query --timeout-ms abc", "error: Cannot parse argument 'abc' for option '--timeout-ms': expected a whole number.", "see: lanequeue submit --help")]
    [InlineData("submit --lane query --wait soon", "error: Cannot parse argument 'soon' for option '--wait': expected a number.", "see: lanequeue submit --help")]
    [InlineData("dead-letters redrive", "error: Option '--lane' is required.", "see: lanequeue dead-letters redrive --help")]
    [InlineData("subm", "error: Unrecognized command or argument 'subm'.", "see: lanequeue --help")]
    public async Task Refused_arguments_exit_2_naming_the_problem_and_the_help_to_read(string args, string problem, string help)
    {
        var (code, output, error) = await RunAsync(args.Split(' '));
        Assert.Equal(ProducerCli.InvalidInput, code);
        Assert.Contains(problem, error.Split(Environment.NewLine));
        Assert.Equal(help, error.Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries)[^1]);
        Assert.DoesNotContain("System.", error, StringComparison.Ordinal);
        Assert.Equal("", output);
    }

    [Fact]
    public async Task Help_still_prints_and_exits_0()
    {
        var (code, output, error) = await RunAsync("submit", "--help");
        Assert.Equal(0, code);
        Assert.Contains("--lane", output, StringComparison.Ordinal);
        Assert.Equal("", error);
    }
}
