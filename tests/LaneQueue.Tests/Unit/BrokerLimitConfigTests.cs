using System.Text.RegularExpressions;
using LaneQueue.Tests.Faults;

namespace LaneQueue.Tests.Unit;

/// <summary>
/// The broker refuses bodies the consumer would refuse anyway: <c>max_message_size</c> in infra/rabbitmq/rabbitmq.conf is
/// the parser's body limit (payload limit + 64 KiB), and every broker this repository starts reads that file.
/// </summary>
public class BrokerLimitConfigTests
{
    static string RepoFile(params string[] parts) => File.ReadAllText(Path.Combine([Repo.Root, .. parts]));

    [Fact]
    public void Max_message_size_of_the_broker_config_is_the_default_body_limit_of_the_parser()
    {
        var line = Regex.Match(RepoFile("infra", "rabbitmq", "rabbitmq.conf"), @"^max_message_size\s*=\s*(\d+)\s*$", RegexOptions.Multiline);
        Assert.True(line.Success, "infra/rabbitmq/rabbitmq.conf sets no max_message_size");
        Assert.Equal(TaskParser.MaxBodyBytes(TaskParser.DefaultMaxPayloadBytes), long.Parse(line.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
    }

    [Fact]
    public void Every_broker_of_the_repository_reads_that_config()
    {
        var compose = RepoFile("docker-compose.yml");
        var brokers = Regex.Matches(compose, @"^\s+hostname: rabbitmq", RegexOptions.Multiline).Count;
        var mounts = Regex.Matches(compose, @"\./infra/rabbitmq/rabbitmq\.conf:/etc/rabbitmq/rabbitmq\.conf").Count;
        Assert.True(brokers >= 4, $"expected the compose broker and three cluster nodes, found {brokers}");
        Assert.Equal(brokers, mounts);
        Assert.Contains("^max_message_size", RepoFile("scripts", "cluster.sh"), StringComparison.Ordinal);
        Assert.Contains("\"$LQ_INFRA/rabbitmq.conf\"", RepoFile("scripts", "broker-up.sh"), StringComparison.Ordinal);
    }
}
