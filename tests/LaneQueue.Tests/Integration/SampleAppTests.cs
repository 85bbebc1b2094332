using System.Text.Json;
using LaneQueue.Tests.Faults;
using Xunit.Abstractions;

namespace LaneQueue.Tests.Integration;

/// <summary>The sample application builds and runs alone: it packs, restores and compiles, which takes both cores.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SampleAppCollection
{
    public const string Name = "sample-app";
}

/// <summary>
/// scripts/sample.sh: the LaneQueue packages packed into a local feed, samples/LaneQueue.Sample built from them (not from
/// the projects) and run against the broker in a fresh vhost. The sample exits 0 only when urgent-query started before
/// background-analysis and its own MassTransit consumer got its message; this test checks the exit code and the lines.
/// Anything missing (the script, the sample, the broker, an API the sample uses) fails the test with what to do.
/// </summary>
[Collection(SampleAppCollection.Name)]
public class SampleAppTests(ITestOutputHelper output)
{
    static readonly TimeSpan Timeout = TimeSpan.FromMinutes(10);

    [Fact]
    public async Task Sample_app_built_from_the_packed_packages_runs_urgent_query_before_background_analysis()
    {
        foreach (var needed in new[] { "scripts/sample.sh", "scripts/pack.sh", "samples/LaneQueue.Sample/LaneQueue.Sample.csproj", "samples/nuget.config" })
        {
            Assert.True(File.Exists(Path.Combine(Repo.Root, needed)),
                $"{needed} is missing from {Repo.Root}: restore it from git (git checkout -- {needed}); scripts/sample.sh packs LaneQueue, builds the sample from the packages and runs it.");
        }

        var run = await Repo.ScriptAsync("sample.sh", [], Timeout);
        output.WriteLine(run.Output);
        Assert.True(run.ExitCode == 0, $"scripts/sample.sh exited {run.ExitCode}: {WhatToDo(run.Output)}\n--- last lines ---\n{Tail(run.Output, 40)}");

        var results = JsonLines(run.Output).Where(line => line.TryGetProperty("task_id", out _)).ToList();
        var started = results
            .OrderBy(r => r.GetProperty("started_at").GetDateTimeOffset())
            .Select(r => r.GetProperty("task_id").GetString())
            .ToList();
        Assert.True(started.SequenceEqual(["blocker", "urgent-query", "background-analysis"]),
            $"expected the tasks to start in the order blocker, urgent-query, background-analysis; they started {string.Join(", ", started)}.\n{Tail(run.Output, 40)}");
        Assert.All(results, r => Assert.Equal("completed", r.GetProperty("status").GetString()));

        var checks = JsonLines(run.Output).Where(line => line.TryGetProperty("check", out _)).ToList();
        Assert.Contains(checks, c => c.GetProperty("check").GetString()!.Contains("MassTransit", StringComparison.Ordinal) && c.GetProperty("ok").GetBoolean());
        Assert.Contains("sample exit code: 0", run.Output, StringComparison.Ordinal);
    }

    /// <summary>The sample's machine-readable stdout lines (JSON objects) among the script's other output.</summary>
    static IEnumerable<JsonElement> JsonLines(string text)
    {
        foreach (var line in text.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            if (!line.StartsWith('{'))
                continue;
            JsonElement element;
            try
            {
                using var document = JsonDocument.Parse(line);
                element = document.RootElement.Clone();
            }
            catch (JsonException)
            {
                continue;
            }
            yield return element;
        }
    }

    static string WhatToDo(string text)
    {
        if (text.Contains("(timed out after", StringComparison.Ordinal))
            return $"it did not finish within {Timeout.TotalMinutes:0} minutes; run 'bash scripts/sample.sh' by hand to see where it stops.";
        if (text.Contains("error CS", StringComparison.Ordinal))
            return "samples/LaneQueue.Sample does not compile against the packed LaneQueue packages: the packages' public API and the sample disagree (see the CS errors below); update the sample or the API so that they agree.";
        if (text.Contains("error NU1", StringComparison.Ordinal))
            return "the sample's packages could not be restored: check that scripts/pack.sh made them (artifacts/packages) and that this machine's NuGet source answers (dotnet nuget list source).";
        if (text.Contains("pack.sh:", StringComparison.Ordinal) || (text.Contains("error", StringComparison.OrdinalIgnoreCase) && !text.Contains("== run", StringComparison.Ordinal)))
            return "packing or building failed before the sample ran; run 'bash scripts/pack.sh' and 'bash scripts/sample.sh' by hand and fix what they report.";
        if (!text.Contains("RabbitMQ ready", StringComparison.Ordinal))
            return "no broker answered: start one with 'bash scripts/broker-up.sh' (or point LANEQUEUE_RABBITMQ_URL and LANEQUEUE_RABBITMQ_MANAGEMENT_URL at one).";
        return "the sample ran but did not pass (wrong order, a failed task or no MassTransit message); see its JSON lines and logs below.";
    }

    static string Tail(string text, int lines) =>
        string.Join('\n', text.Split('\n').TakeLast(lines));
}
