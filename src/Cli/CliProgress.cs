using Spectre.Console;

namespace LaneQueue.Cli;

/// <summary>Progress of long CLI work (Spectre.Console): a live bar on a terminal, nothing fancy anywhere else.</summary>
static class CliProgress
{
    /// <summary>Whether <paramref name="writer"/> is the process's own standard error or output, and that is a terminal.</summary>
    public static bool IsTerminal(TextWriter writer) =>
        (ReferenceEquals(writer, Console.Error) && !Console.IsErrorRedirected) || (ReferenceEquals(writer, Console.Out) && !Console.IsOutputRedirected);

    /// <summary>
    /// Runs <paramref name="work"/> with a progress bar of <paramref name="total"/> steps on standard error (or
    /// <paramref name="terminal"/>); it reports steps done through the callback.
    /// </summary>
    public static Task RunAsync(string what, int total, Func<Action<int>, Task> work, TextWriter? terminal = null) =>
        AnsiConsole.Create(terminal is null
                ? new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) }
                : new AnsiConsoleSettings { Out = new AnsiConsoleOutput(terminal), Ansi = AnsiSupport.Yes, Interactive = InteractionSupport.Yes })
            .Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .StartAsync(async context =>
            {
                var bar = context.AddTask(what, maxValue: total);
                await work(steps => bar.Increment(steps));
                bar.Value = total;
            });
}

/// <summary>An <see cref="IProgress{T}"/> that reports on the caller's thread, in order (<see cref="Progress{T}"/> posts later).</summary>
sealed class InlineProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
