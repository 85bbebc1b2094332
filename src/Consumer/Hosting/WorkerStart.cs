using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace LaneQueue.Consumer;

/// <summary>
/// Runs a worker process's host (src/Worker, or your own worker's <c>Main</c>): a setting refused at start (a
/// <c>LaneQueue:*</c> value out of range, or one of the wrong type) ends the process with an <c>error:</c> line naming it,
/// a line on where to fix it, and exit code <see cref="InvalidSettings"/>, instead of an unhandled exception's stack trace
/// and an abort. Anything else fails as before.
/// </summary>
public static class WorkerStart
{
    /// <summary>The exit code of a worker whose settings were refused.</summary>
    public const int InvalidSettings = 2;

    public static async Task<int> RunAsync(Func<IHost> build, TextWriter? errors = null)
    {
        ArgumentNullException.ThrowIfNull(build);
        IHost? host = null;
        try
        {
            try
            {
                host = build();
                await host.StartAsync();
            }
            catch (Exception ex) when (SettingsProblem(ex) is { } problem)
            {
                errors ??= Console.Error;
                await errors.WriteLineAsync($"error: {problem}");
                await errors.WriteLineAsync("Fix it in appsettings.json, an environment variable (LaneQueue__SlotBudget=8) or the command line " +
                                            "(--LaneQueue:SlotBudget=8); README.md, Configuration, lists every setting.");
                return InvalidSettings;
            }
            await host.WaitForShutdownAsync();
            return 0;
        }
        finally
        {
            if (host is IAsyncDisposable disposable)
                await disposable.DisposeAsync();
            else
                host?.Dispose();
        }
    }

    /// <summary>What was wrong with the settings, or null when <paramref name="ex"/> is not about them.</summary>
    static string? SettingsProblem(Exception ex) => ex switch
    {
        OptionsValidationException invalid => string.Join("; ", invalid.Failures),
        AggregateException { InnerExceptions.Count: > 0 } all when all.InnerExceptions.All(e => e is OptionsValidationException) =>
            string.Join("; ", all.InnerExceptions.SelectMany(e => ((OptionsValidationException)e).Failures)),
        // The configuration binder: "Failed to convert configuration value 'abc' at 'LaneQueue:SlotBudget' to type 'System.Int32'."
        InvalidOperationException { InnerException: ArgumentException or FormatException } binding
            when binding.Message.StartsWith("Failed to convert configuration value", StringComparison.Ordinal) => binding.Message,
        _ => null,
    };
}
