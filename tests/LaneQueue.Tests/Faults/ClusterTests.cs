using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using LaneQueue.Contracts;
using LaneQueue.Tests.Broker;
using RabbitMQ.Client;
using Xunit.Abstractions;

namespace LaneQueue.Tests.Faults;

/// <summary>
/// The cluster test (it starts a 3-node cluster, so it takes minutes): scripts/test.sh runs it as a step of its own,
/// <c>dotnet test --filter Category=Cluster</c>, after the main suite (<c>Category!=Cluster</c>). Never skipped.
/// </summary>
public sealed class ClusterFactAttribute : FactAttribute
{
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ClusterCollection
{
    public const string Name = "cluster";
}

/// <summary>
/// A 3-node cluster (scripts/cluster.sh), quorum lane queues, clients given every node in their URL. One node stops in
/// the middle of the run: producers and consumers carry on through the other two, and every confirmed task completes.
/// </summary>
[Collection(ClusterCollection.Name)]
[Trait("Category", "Cluster")]
public sealed class ClusterTests(ITestOutputHelper output) : IAsyncLifetime
{
    readonly List<ConsumerProcess> _consumers = [];
    string _url = "";

    public async Task InitializeAsync()
    {
        var up = await Repo.ScriptAsync("cluster.sh", ["up"], TimeSpan.FromMinutes(5));
        output.WriteLine(up.Output);
        if (up.ExitCode != 0)
        {
            throw new InvalidOperationException(
                "scripts/cluster.sh up failed: the cluster test starts three RabbitMQ nodes of Debian's rabbitmq-server (run as root after " +
                "'bash scripts/broker-up.sh' installed it; ports 5711-5713, 15711-15713, 25711-25713 free on 127.0.0.1).\n" + up.Output);
        }
        _url = up.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Last(l => l.StartsWith("amqp://", StringComparison.Ordinal));
    }

    public async Task DisposeAsync()
    {
        foreach (var consumer in _consumers)
            await consumer.DisposeAsync();
        await Repo.ScriptAsync("cluster.sh", ["down"], TimeSpan.FromMinutes(3));
    }

    [ClusterFact]
    public async Task Stopping_one_node_of_three_mid_run_loses_no_confirmed_task()
    {
        string[] settings = ["--LaneQueue:QuorumQueues=true"];
        _consumers.Add(await ConsumerProcess.StartAsync(_url, "cluster-a", settings));
        _consumers.Add(await ConsumerProcess.StartAsync(_url, "cluster-b", settings));
        await using var tally = await ResultTally.StartAsync(_url, quorum: true);
        await using var load = await ProducerLoad.StartAsync(_url, tally, "cluster", producers: 2, perProducer: 500, pace: TimeSpan.FromMilliseconds(40), maxTaskMs: 100, quorum: true);

        await ConsumerKillTests.WaitUntilAsync(() => load.Submitted >= 100, TimeSpan.FromSeconds(60), "100 tasks submitted");
        // The node to stop: producer 0's, holding a classic (not replicated) queue that every client declared at connect, so
        // that producer must reconnect without it (CI stalled twice when a recovery waited for such a queue's node).
        var node = await NodeOfAsync("api/connections?columns=node,client_properties", c =>
            c.GetProperty("client_properties").TryGetProperty("connection_name", out var n) && n.GetString() == "cluster-producer-0");
        await MoveClassicQueueAsync(BrokerNames.ExternalQueue(SessionLane.Control), node);
        var onNode = (await Repo.ScriptAsync("broker-node.sh", ["ctl", $"lq-c{node}", "list_connections", "--no-table-headers", "client_properties"], TimeSpan.FromSeconds(60)))
            .Output.Split('\n').Count(l => l.Contains("connection_name", StringComparison.Ordinal));
        output.WriteLine($"{DateTime.UtcNow:HH:mm:ss} stopping node lq-c{node} (producer 0 and the classic queue are on it; {onNode} client connections on it) at {load}; {tally.Count()}");
        var stop = await Repo.ScriptAsync("cluster.sh", ["stop", node.ToString(CultureInfo.InvariantCulture)], TimeSpan.FromMinutes(2));
        var confirmedWhenDown = load.Submitted;
        Assert.True(stop.ExitCode == 0, stop.Output);
        output.WriteLine($"{DateTime.UtcNow:HH:mm:ss} lq-c{node} stopped at {load}; {tally.Count()}");

        try
        {
            await load.Completion.WaitAsync(TimeSpan.FromMinutes(4));
        }
        catch (TimeoutException)
        {
            // A producer whose recovery waits for the stopped node fails each submit after 30 s and shows here.
            Assert.Fail($"the producers did not finish within 4 min of the node stop: {load}; in flight: {load.InFlight}; {tally.Count()}");
        }
        var counts = await tally.WaitForAllAsync(TimeSpan.FromMinutes(3), output.WriteLine);
        var report = $"{counts}; producers: {load}; client connections on the stopped node: {onNode}";
        output.WriteLine(report);
        if (counts.Lost > 0)
            output.WriteLine("consumer logs: " + string.Join(", ", _consumers.Select(c => c.SaveOutput("cluster"))));
        Evidence.Write("fault-cluster-node-stop", new
        {
            Fault = "one node of a 3-node cluster stopped mid-run (quorum queues, clients list all nodes)",
            Producers = 2,
            ConsumerProcesses = _consumers.Count,
            ClientConnectionsOnTheStoppedNode = onNode,
            load.Planned,
            Confirmed = load.Submitted,
            FailedSubmits = load.Failed,
            ConfirmedAfterTheNodeWasDown = load.Submitted - confirmedWhenDown,
            counts.Accepted,
            counts.Completed,
            RanTwice = counts.Duplicated,
            counts.Lost,
            counts.CompletedUnconfirmed,
        }, report);
        Assert.True(counts.Lost == 0, $"lost:\n{tally.DescribeMissing()}\n{report}");
        Assert.Equal(counts.Accepted, counts.Completed);
        // A submit in flight on the stopped node's connection may fail (it is then not promised); nearly all get through.
        Assert.Equal(load.Planned, load.Submitted + load.Failed);
        Assert.True(load.Failed <= 10, $"producers should get nearly every task through the other nodes; {report}");
        Assert.True(load.Submitted - confirmedWhenDown > 0, $"tasks must be confirmed after the node was down; {report}");
        foreach (var consumer in _consumers)
            Assert.False(consumer.HasExited, ConsumerKillTests.Tail(consumer.Output));
    }

    HttpClient Management()
    {
        var first = LaneQueue.Producer.BrokerAddress.Parse(_url).Hosts[0]; // lq-c1: its management port is AMQP + 10000
        var management = new HttpClient { BaseAddress = new Uri($"http://{first.Host}:{first.Port + 10000}/") };
        management.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String("guest:guest"u8.ToArray()));
        return management;
    }

    /// <summary>The node (1-3) of the first item of a management API list that matches (polled: the list lags a few seconds).</summary>
    async Task<int> NodeOfAsync(string path, Func<JsonElement, bool> match)
    {
        using var management = Management();
        var node = await TestVhost.PollAsync(async () =>
            (await management.GetFromJsonAsync<List<JsonElement>>(path))!.FirstOrDefault(match) is { ValueKind: JsonValueKind.Object } found
                ? found.GetProperty("node").GetString()
                : null, $"an item of {path} that matches"); // lq-cN@localhost
        return int.Parse(node["lq-c".Length..node.IndexOf('@', StringComparison.Ordinal)], CultureInfo.InvariantCulture);
    }

    /// <summary>Makes the classic queue live on node <paramref name="node"/>: deleted, then declared and bound again through
    /// a connection to that node (a classic queue lives where it was declared). It is idle in this test.</summary>
    async Task MoveClassicQueueAsync(string queue, int node)
    {
        if (await NodeOfAsync("api/queues/lanequeue?columns=name,node", q => q.GetProperty("name").GetString() == queue) == node)
            return;
        var host = LaneQueue.Producer.BrokerAddress.Parse(_url).Hosts[node - 1];
        var factory = new ConnectionFactory { HostName = host.Host, Port = host.Port, VirtualHost = "lanequeue" };
        await using var connection = await factory.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        await channel.QueueDeleteAsync(queue);
        await channel.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false);
        await channel.QueueBindAsync(queue, BrokerNames.ExternalExchange, BrokerNames.RoutingKey(SessionLane.Control));
        Assert.Equal(node, await NodeOfAsync("api/queues/lanequeue?columns=name,node", q => q.GetProperty("name").GetString() == queue));
    }
}
