using System.Text.RegularExpressions;
using LaneQueue.Tests.Faults;

namespace LaneQueue.Tests.Unit;

/// <summary>
/// The install commands a new user copies from the READMEs and docs/packages.md name the version the repository packs
/// (<c>&lt;Version&gt;</c> in Directory.Build.props): the README's and packages.md's said 0.9.0 for five releases, and a copied
/// command failed.
/// </summary>
public partial class DocsVersionTests
{
    static string Version() =>
        VersionProperty().Match(File.ReadAllText(Path.Combine(Repo.Root, "Directory.Build.props"))).Groups[1].Value;

    [Theory]
    [InlineData("README.md")]
    [InlineData("docs/packages.md")]
    [InlineData("clients/python/README.md")]
    [InlineData("clients/typescript/README.md")]
    public void Install_commands_name_the_version_the_repository_packs(string file)
    {
        var version = Version();
        Assert.Matches(@"^\d+\.\d+\.\d+", version);
        var text = File.ReadAllText(Path.Combine(Repo.Root, file));
        var named = VersionInDocs().Matches(text).Select(m => m.Groups["v"].Value).ToList();
        Assert.NotEmpty(named); // the page still shows how to install
        Assert.All(named, v => Assert.True(v == version, $"{file} names version {v} in an install command; the repository packs {version}"));
    }

    [GeneratedRegex("<Version>([^<]+)</Version>")]
    private static partial Regex VersionProperty();

    /// <summary>
    /// <c>--version X</c>, <c>Version="X"</c>, <c>LaneQueue.*.X.nupkg</c>, the wheel <c>lanequeue-X-py3...</c> and the tarball
    /// <c>lanequeue-client-X.tgz</c>, where X is a release number.
    /// </summary>
    [GeneratedRegex(@"(?:--version |Version=""|LaneQueue\.[A-Za-z]+\.|lanequeue-(?:client-)?)(?<v>\d+\.\d+\.\d+(?:-[0-9A-Za-z.]+)?)(?=[ ""\n]|\.nupkg|\.tgz|-py3)")]
    private static partial Regex VersionInDocs();
}
