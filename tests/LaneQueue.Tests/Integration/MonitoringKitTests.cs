using System.Text.Json;
using System.Text.RegularExpressions;
using LaneQueue.Tests.Broker;
using LaneQueue.Tests.Faults;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;
using YamlDotNet.RepresentationModel;

namespace LaneQueue.Tests.Integration;

/// <summary>
/// deploy/monitoring/: the Grafana dashboard and the Prometheus alert rules name only metrics that a running consumer's
/// /metrics really serves (scraped here after a few tasks, one of them dead-lettered, and a lane paused).
/// </summary>
[Collection(BrokerCollection.Name)]
public sealed partial class MonitoringKitTests(BrokerFixture broker, ITestOutputHelper output)
{
    static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);
    static readonly string Monitoring = Path.Combine(Repo.Root, "deploy", "monitoring");

    [Fact]
    public async Task Every_metric_the_dashboard_and_the_alert_rules_name_is_in_a_real_scrape()
    {
        var dashboard = DashboardExpressions(Path.Combine(Monitoring, "lanequeue-dashboard.json"));
        var rules = AlertExpressions(Path.Combine(Monitoring, "lanequeue-alerts.yml"));
        Assert.NotEmpty(dashboard);
        Assert.NotEmpty(rules);

        var text = await ScrapeAsync();
        var scraped = text.Split('\n').Where(l => l.Length > 0 && l[0] != '#').Select(l => MetricLine().Match(l).Groups["name"].Value).ToHashSet(StringComparer.Ordinal);
        output.WriteLine("scraped: " + string.Join(" ", scraped.Order(StringComparer.Ordinal)));
        var missing = dashboard.Concat(rules)
            .SelectMany(expr => MetricNames(expr).Select(name => (name, expr)))
            .Where(m => !scraped.Contains(m.name))
            .Select(m => $"{m.name} (in: {m.expr})")
            .Distinct()
            .ToList();
        Assert.True(missing.Count == 0, "metrics not served by the consumer's /metrics:\n" + string.Join("\n", missing));
        // The kit covers what it promises: depth, dead letters, paused lanes, consumers.
        var named = dashboard.Concat(rules).SelectMany(MetricNames).ToHashSet(StringComparer.Ordinal);
        Assert.Subset(named, new HashSet<string>(["queue_depth", "queue_active", "commands_dead_lettered_total", "lane_paused"], StringComparer.Ordinal));
        // The lane-paused gauge says what happened: generate paused by the operator, query running.
        Assert.Equal("1", Sample(text, "lane_paused", "lane=\"generate\"", "by=\"operator\""));
        Assert.Equal("0", Sample(text, "lane_paused", "lane=\"query\"", "by=\"operator\""));
    }

    [Fact]
    public void Metric_names_are_read_from_promql_without_functions_labels_or_keywords()
    {
        Assert.Equal(["lane_paused", "queue_depth"],
            MetricNames("""(max by (lane) (queue_depth{job="x"}) > 0) unless on (lane) (count by (lane) (max by (lane, instance) (lane_paused{by=~"gate|operator"}) == 0) > 0)""").Order());
        Assert.Equal(["command_latency_ms_milliseconds_bucket"],
            MetricNames("histogram_quantile(0.95, sum by (le, lane) (rate(command_latency_ms_milliseconds_bucket[5m])))"));
        Assert.Equal(["queue_depth"], MetricNames("label_values(queue_depth, lane)"));
    }

    /// <summary>The value of the one sample of <paramref name="name"/> with all the given labels.</summary>
    static string Sample(string scrape, string name, params string[] labels) =>
        Assert.Single(scrape.Split('\n'), l => l.StartsWith(name + "{", StringComparison.Ordinal) && labels.All(label => l.Contains(label, StringComparison.Ordinal)))
            .Split(' ')[^1].Trim();

    /// <summary>Starts a consumer with telemetry on a free port, runs a few tasks, pauses a lane, and returns its /metrics.</summary>
    async Task<string> ScrapeAsync()
    {
        await using var vhost = await broker.CreateVhostAsync();
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Test" });
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.AddLaneQueueConsumer(o =>
        {
            o.RabbitMqUrl = vhost.Url;
            o.ConsumerName = "scraped";
            o.Queue = o.Queue with { RetryPolicy = new RetryPolicy { Strategy = RetryStrategy.None } };
        }).AddBuiltInHandlers();
        builder.AddLaneQueueTelemetry();
        var app = builder.Build();
        app.MapLaneQueueEndpoints();
        await app.StartAsync();
        try
        {
            var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            using var http = new HttpClient { BaseAddress = new Uri(address) };
            await TestVhost.EventuallyAsync(async () => (await http.GetAsync("/health/ready")).IsSuccessStatusCode, "ready");
            await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = vhost.Url });
            Assert.True((await producer.SubmitAndWaitAsync(ExternalTask.Create("scrape-ok", SessionLane.Query), Wait)).Success);
            Assert.False((await producer.SubmitAndWaitAsync(ExternalTask.Create("scrape-fail", SessionLane.Execute, null, "fail"), Wait)).Success);
            await producer.PauseLaneAsync(SessionLane.Generate);
            await TestVhost.EventuallyAsync(() => Task.FromResult(app.Services.GetRequiredService<LaneEndpoints>().IsPaused(SessionLane.Generate)), "generate paused");
            var text = "";
            await TestVhost.EventuallyAsync(async () => (text = await http.GetStringAsync("/metrics")).Contains("commands_dead_lettered", StringComparison.Ordinal), "dead letters in /metrics");
            return text;
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }

    /// <summary>Every PromQL expression of the dashboard: panel targets (also in rows) and query variables.</summary>
    static List<string> DashboardExpressions(string path)
    {
        using var json = JsonDocument.Parse(File.ReadAllText(path));
        var found = new List<string>();
        void Walk(JsonElement element)
        {
            // A datasource variable's query is a plugin type (prometheus), not PromQL.
            if (element.ValueKind == JsonValueKind.Object && !(element.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.String && type.GetString() == "datasource"))
            {
                foreach (var property in element.EnumerateObject())
                {
                    if (property.Name is "expr" or "query" && property.Value.ValueKind == JsonValueKind.String && property.Value.GetString() is { Length: > 0 } expr)
                        found.Add(expr);
                    else
                        Walk(property.Value);
                }
            }
            else if (element.ValueKind == JsonValueKind.Array)
            {
                foreach (var item in element.EnumerateArray())
                    Walk(item);
            }
        }
        Walk(json.RootElement);
        Assert.Equal("LaneQueue", json.RootElement.GetProperty("title").GetString());
        return found;
    }

    /// <summary>Every rule's expression; each rule must be a complete alert (name, expression, severity, summary).</summary>
    static List<string> AlertExpressions(string path)
    {
        var yaml = new YamlStream();
        using (var reader = new StreamReader(path))
            yaml.Load(reader);
        var root = (YamlMappingNode)yaml.Documents[0].RootNode;
        var found = new List<string>();
        foreach (YamlMappingNode group in (YamlSequenceNode)root["groups"])
        {
            foreach (YamlMappingNode rule in (YamlSequenceNode)group["rules"])
            {
                var name = ((YamlScalarNode)rule["alert"]).Value;
                Assert.False(string.IsNullOrEmpty(name), "a rule without alert name");
                Assert.True(rule.Children.ContainsKey("expr"), $"{name}: no expr");
                Assert.False(string.IsNullOrEmpty(((YamlScalarNode)((YamlMappingNode)rule["labels"])["severity"]).Value), $"{name}: no severity");
                Assert.False(string.IsNullOrEmpty(((YamlScalarNode)((YamlMappingNode)rule["annotations"])["summary"]).Value), $"{name}: no summary");
                found.Add(((YamlScalarNode)rule["expr"]).Value!);
            }
        }
        return found;
    }

    static readonly HashSet<string> Keywords = new(StringComparer.Ordinal)
    {
        "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "inf", "nan",
        // aggregation operators, which may be followed by a by/without clause instead of their parenthesis
        "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk", "quantile",
    };

    /// <summary>The metric names a PromQL expression reads: identifiers that are not functions, keywords, labels or durations.</summary>
    internal static List<string> MetricNames(string expr)
    {
        var text = Strings().Replace(expr, "\"\"");
        text = Matchers().Replace(text, "{}");
        text = Ranges().Replace(text, "[]");
        text = Groupings().Replace(text, "$1()");
        // label_values(metric, label): the second argument is a label.
        text = LabelValues().Replace(text, "label_values($1)");
        return [.. Identifiers().Matches(text)
            .Where(m => !(text.Length > m.Index + m.Length && text[m.Index + m.Length] == '('))
            .Select(m => m.Value)
            .Where(name => !Keywords.Contains(name) && !name.StartsWith('$'))
            .Distinct()];
    }

    [GeneratedRegex("""^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)""")]
    private static partial Regex MetricLine();

    [GeneratedRegex("""("[^"]*"|'[^']*')""")]
    private static partial Regex Strings();

    [GeneratedRegex("""\{[^}]*\}""")]
    private static partial Regex Matchers();

    [GeneratedRegex("""\[[^\]]*\]""")]
    private static partial Regex Ranges();

    [GeneratedRegex("""\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)""")]
    private static partial Regex Groupings();

    [GeneratedRegex("""label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,[^)]*\)""")]
    private static partial Regex LabelValues();

    [GeneratedRegex("""(?<![\w.$])[a-zA-Z_:][a-zA-Z0-9_:]*""")]
    private static partial Regex Identifiers();
}
