using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;

namespace LaneQueue.Tests.Faults;

/// <summary>
/// A RabbitMQ node of this test run only (scripts/broker-node.sh: its own node name, ports and directory, loopback
/// only), which a test may restart, kill or cut off without touching the shared broker other tests use.
/// A node that cannot start fails the test with what to do; it never skips.
/// </summary>
public sealed class FaultNode : IAsyncDisposable
{
    static readonly TimeSpan ScriptTimeout = TimeSpan.FromSeconds(150);

    readonly string[] _startArgs;

    FaultNode(string name, int port, int managementPort, string[] startArgs)
    {
        Name = name;
        Port = port;
        ManagementPort = managementPort;
        _startArgs = startArgs;
        Management = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{managementPort}/"), Timeout = TimeSpan.FromSeconds(30) };
        Management.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes("guest:guest")));
    }

    public string Name { get; }

    public int Port { get; }

    public int ManagementPort { get; }

    /// <summary>The node's management HTTP API (guest, from loopback).</summary>
    public HttpClient Management { get; }

    /// <summary>
    /// Starts a fresh node <c>PREFIX-PID@localhost</c> of this test run on the first free block of ports from
    /// <paramref name="preferredPort"/> (AMQP port + <paramref name="ports"/> - 1, management + 10000, distribution + 20000),
    /// so test runs of several engineers on one machine never meet. Nodes of runs that died are reaped first.
    /// </summary>
    public static async Task<FaultNode> StartAsync(string prefix, int preferredPort, int ports = 1, Func<int, string[]>? options = null)
    {
        await Repo.ScriptAsync("broker-node.sh", ["reap", "-"], ScriptTimeout);
        var port = FreePortBlock(preferredPort, ports);
        var name = $"{prefix}-{Environment.ProcessId}";
        var extra = options?.Invoke(port) ?? [];
        var args = new List<string> { name, port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--owner", Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture) };
        args.AddRange(extra);
        var managementPort = port + 10_000;
        for (var i = 0; i < extra.Length - 1; i++)
        {
            if (extra[i] == "--mgmt-port")
                managementPort = int.Parse(extra[i + 1], System.Globalization.CultureInfo.InvariantCulture);
        }
        var node = new FaultNode(name, port, managementPort, [.. args]);
        await node.RunAsync("start", [.. args, "--fresh"]);
        await node.WaitForManagementAsync();
        return node;
    }

    static int FreePortBlock(int preferred, int count)
    {
        for (var port = preferred; port < preferred + 200; port += count)
        {
            if (Enumerable.Range(port, count).SelectMany(p => new[] { p, p + 10_000, p + 20_000 }).All(IsFree))
                return port;
        }
        throw new InvalidOperationException($"no free block of ports from {preferred} (and +10000, +20000) on 127.0.0.1");
    }

    static bool IsFree(int port)
    {
        try
        {
            var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, port);
            listener.Start();
            listener.Stop();
            return true;
        }
        catch (System.Net.Sockets.SocketException)
        {
            return false;
        }
    }

    /// <summary>Starts the node again with its data (after <see cref="StopAsync"/> or <see cref="KillAsync"/>).</summary>
    public async Task StartAgainAsync()
    {
        await RunAsync("start", _startArgs);
        await WaitForManagementAsync();
    }

    /// <summary>The management plugin's listener can come up a moment after the node reports it has booted.</summary>
    async Task WaitForManagementAsync()
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            try
            {
                using var response = await Management.GetAsync("api/overview");
                if (response.IsSuccessStatusCode)
                    return;
            }
            catch (HttpRequestException) when (DateTime.UtcNow < deadline)
            {
            }
            if (DateTime.UtcNow >= deadline)
                throw new InvalidOperationException($"node {Name} booted but its management API on 127.0.0.1:{ManagementPort} does not answer");
            await Task.Delay(250);
        }
    }

    public Task StopAsync() => RunAsync("stop", [Name]);

    /// <summary>kill -9 of the node's OS process.</summary>
    public Task KillAsync() => RunAsync("kill", [Name]);

    public Task<Repo.Run> CtlAsync(params string[] args) => Repo.ScriptAsync("broker-node.sh", ["ctl", Name, .. args], ScriptTimeout);

    async Task RunAsync(string command, string[] args)
    {
        var run = await Repo.ScriptAsync("broker-node.sh", [command, .. args], ScriptTimeout);
        if (run.ExitCode != 0)
        {
            throw new InvalidOperationException(
                $"scripts/broker-node.sh {command} {string.Join(' ', args)} failed (exit {run.ExitCode}). The fault tests run RabbitMQ nodes of " +
                "their own from Debian's rabbitmq-server: run them as root on a machine where 'bash scripts/broker-up.sh' has installed it, " +
                $"with ports {Port}, {ManagementPort} and {Port + 20_000} free on 127.0.0.1.\n{run.Output}");
        }
    }

    /// <summary>The queues of a vhost with their ready and unacked counts (for failure messages).</summary>
    public async Task<string> QueuesAsync(string vhost) =>
        (await CtlAsync("list_queues", "-p", vhost, "name", "messages_ready", "messages_unacknowledged", "consumers")).Output;

    /// <summary>An AMQP URL of this node for <paramref name="vhost"/>.</summary>
    public string Url(string vhost, string user = "guest", string password = "guest") =>
        $"amqp://{Uri.EscapeDataString(user)}:{Uri.EscapeDataString(password)}@127.0.0.1:{Port}/{Uri.EscapeDataString(vhost)}";

    /// <summary>A fresh vhost (guest may use it); returns its name.</summary>
    public async Task<string> CreateVhostAsync(string prefix = "lq-fault")
    {
        var vhost = $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 9)];
        using (var put = await Management.PutAsync($"api/vhosts/{Uri.EscapeDataString(vhost)}", JsonContent.Create(new { })))
            put.EnsureSuccessStatusCode();
        using (var permit = await Management.PutAsync($"api/permissions/{Uri.EscapeDataString(vhost)}/guest",
                   JsonContent.Create(new { configure = ".*", write = ".*", read = ".*" })))
            permit.EnsureSuccessStatusCode();
        return vhost;
    }

    public async Task DeleteVhostAsync(string vhost)
    {
        try
        {
            using var _ = await Management.DeleteAsync($"api/vhosts/{Uri.EscapeDataString(vhost)}");
        }
        catch (HttpRequestException)
        {
            // the node is down; it is destroyed with its data at the end anyway
        }
    }

    public async ValueTask DisposeAsync()
    {
        Management.Dispose();
        await Repo.ScriptAsync("broker-node.sh", ["destroy", Name], ScriptTimeout);
    }
}

/// <summary>The node the fault tests share (one per test run); tests make a vhost each, and may restart or kill it.</summary>
public sealed class FaultBrokerFixture : IAsyncLifetime
{
    public const int Port = 5701;

    FaultNode? _node;
    Exception? _failure;

    public FaultNode Node => _node ?? throw new InvalidOperationException(_failure?.Message ?? "the fault node did not start", _failure);

    public async Task InitializeAsync()
    {
        try
        {
            _node = await FaultNode.StartAsync("lq-fault", Port);
        }
        catch (InvalidOperationException ex)
        {
            _failure = ex; // every test of the collection then fails with this message
        }
    }

    public async Task DisposeAsync()
    {
        if (_node is not null)
            await _node.DisposeAsync();
    }
}

/// <summary>
/// Fault tests: one at a time (they restart, kill and cut their broker node and their processes), on a RabbitMQ node of
/// their own (<see cref="FaultBrokerFixture"/>), so they run beside the broker collection, which uses the shared broker:
/// nothing they restart, kill or cut is anyone else's.
/// </summary>
[CollectionDefinition(Name)]
public sealed class FaultCollection : ICollectionFixture<FaultBrokerFixture>
{
    public const string Name = "faults";
}
