using System.Reflection;
using System.Text.RegularExpressions;
using LaneQueue.Consumer;
using LaneQueue.Tests.Faults;

namespace LaneQueue.Tests.Unit;

/// <summary>
/// The README's Configuration table names every setting of the consumer (<see cref="LaneQueueOptions"/>, its <c>Gate</c>
/// and <c>Queue</c> sections): <c>DeliveryLimit</c>, <c>IsolateCrashSuspects</c>, <c>InterruptTasks</c> and
/// <c>Gate:Enabled</c> were described elsewhere in the README but missing from the table a user looks them up in.
/// </summary>
public partial class DocsConfigurationTests
{
    static IEnumerable<string> Settings(Type type, string prefix) =>
        type.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.SetMethod is { IsPublic: true } && p.PropertyType != typeof(GateOptions) && p.PropertyType != typeof(SessionQueueConfig))
            .Select(p => prefix + p.Name);

    /// <summary>The keys of the Configuration table: each backticked name of its first column, without its lane or sub-key part.</summary>
    static HashSet<string> DocumentedKeys()
    {
        var readme = File.ReadAllText(Path.Combine(Repo.Root, "README.md"));
        var start = readme.IndexOf("\n## Configuration\n", StringComparison.Ordinal);
        Assert.True(start >= 0, "README has no '## Configuration' section");
        var section = readme[start..];
        section = section[..section.IndexOf("\n## ", 1, StringComparison.Ordinal)];
        var keys = new HashSet<string>(StringComparer.Ordinal);
        foreach (var row in section.Split('\n').Where(l => l.StartsWith("| `", StringComparison.Ordinal)))
        {
            foreach (Match key in KeyPattern().Matches(row.Split('|')[1]))
                keys.Add(key.Groups["key"].Value);
        }
        return keys;
    }

    [Fact]
    public void The_configuration_table_names_every_consumer_setting()
    {
        var documented = DocumentedKeys();
        var settings = Settings(typeof(LaneQueueOptions), "")
            .Concat(Settings(typeof(GateOptions), "Gate:"))
            .Concat(Settings(typeof(SessionQueueConfig), "Queue:"))
            .ToList();
        Assert.Contains("Gate:Enabled", settings); // the reflection finds the sections' settings
        var missing = settings.Where(s => !documented.Contains(s)).ToList();
        Assert.True(missing.Count == 0, $"README's Configuration table does not name: {string.Join(", ", missing)}");
    }

    /// <summary>`Name`, `Section:Name`, with an optional `:&lt;Lane&gt;...` or `:SubKey` after it (not part of the key).</summary>
    [GeneratedRegex(@"`(?<key>(?:Gate:|Queue:)?[A-Z][A-Za-z]+)(?::[^`]*)?`")]
    private static partial Regex KeyPattern();
}
