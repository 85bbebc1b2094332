using System.Collections.Frozen;

namespace LaneQueue.Dashboard;

/// <summary>The page, stylesheet and script, embedded in this assembly (Assets/).</summary>
internal static class DashboardAssets
{
    static readonly FrozenDictionary<string, string> Types = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["index.html"] = "text/html; charset=utf-8",
        ["dashboard.css"] = "text/css; charset=utf-8",
        ["dashboard.js"] = "text/javascript; charset=utf-8",
    }.ToFrozenDictionary();

    static readonly FrozenDictionary<string, string> Texts = Types.Keys.ToFrozenDictionary(name => name, Read);

    public static bool TryGet(string name, out string text, out string contentType)
    {
        contentType = Types.GetValueOrDefault(name, "");
        return Texts.TryGetValue(name, out text!);
    }

    public static string Page => Texts["index.html"];

    static string Read(string name)
    {
        using var stream = typeof(DashboardAssets).Assembly.GetManifestResourceStream($"LaneQueue.Dashboard.Assets.{name}")
            ?? throw new InvalidOperationException($"embedded dashboard asset '{name}' is missing from {typeof(DashboardAssets).Assembly.GetName().Name}");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
