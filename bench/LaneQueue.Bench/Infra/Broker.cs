using System.Collections.Concurrent;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using LaneQueue.Producer;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;

namespace LaneQueue.Bench.Infra;

/// <summary>The broker under test: its management API (vhosts) and AMQP URL.</summary>
public sealed class Broker : IDisposable
{
    static readonly ConcurrentDictionary<string, Broker> VhostsAlive = new();

    readonly HttpClient _management;
    readonly Uri _amqp;

    Broker(Uri amqp, HttpClient management)
    {
        _amqp = amqp;
        _management = management;
    }

    public string ManagementUrl => _management.BaseAddress!.ToString();

    public static async Task<Broker> ConnectAsync(string amqpUrl, string? managementUrl, CancellationToken cancellationToken)
    {
        var amqp = new Uri(amqpUrl);
        managementUrl ??= $"http://{amqp.Host}:15672";
        var credentials = amqp.UserInfo.Length > 0 ? Uri.UnescapeDataString(amqp.UserInfo) : "guest:guest";
        var management = new HttpClient { BaseAddress = new Uri(managementUrl.TrimEnd('/') + "/"), Timeout = TimeSpan.FromSeconds(30) };
        management.DefaultRequestHeaders.Authorization =
            new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes(credentials)));
        try
        {
            using var overview = await management.GetAsync("api/overview", cancellationToken);
            overview.EnsureSuccessStatusCode();
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
        {
            management.Dispose();
            throw new InvalidOperationException(
                $"the RabbitMQ management API at {managementUrl} does not answer ({ex.Message}); start a broker with " +
                "'bash scripts/broker-up.sh' or set LANEQUEUE_RABBITMQ_MANAGEMENT_URL", ex);
        }
        return new Broker(amqp, management);
    }

    /// <summary>A GET on the management API (e.g. <c>api/vhosts/NAME</c>), as JSON.</summary>
    public async Task<JsonElement> GetAsync(string path, CancellationToken cancellationToken) =>
        await _management.GetFromJsonAsync<JsonElement>(path, cancellationToken);

    string User => _amqp.UserInfo.Length > 0 ? Uri.UnescapeDataString(_amqp.UserInfo.Split(':')[0]) : "guest";

    /// <summary>RabbitMQ and Erlang versions from the management overview.</summary>
    public async Task<(string RabbitMq, string Erlang)> VersionsAsync(CancellationToken cancellationToken)
    {
        var overview = await _management.GetFromJsonAsync<JsonElement>("api/overview", cancellationToken);
        return (overview.TryGetProperty("rabbitmq_version", out var r) ? r.GetString() ?? "?" : "?",
                overview.TryGetProperty("erlang_version", out var e) ? e.GetString() ?? "?" : "?");
    }

    /// <summary>A fresh vhost (with permissions for the URL's user); dispose it to delete it.</summary>
    public async Task<Vhost> CreateVhostAsync(string label, CancellationToken cancellationToken)
    {
        var name = $"lq-bench-{label}-{Guid.NewGuid():N}"[..(18 + label.Length)];
        using (var put = await _management.PutAsync($"api/vhosts/{Uri.EscapeDataString(name)}", JsonContent.Create(new { }), cancellationToken))
            put.EnsureSuccessStatusCode();
        using (var permit = await _management.PutAsync(
                   $"api/permissions/{Uri.EscapeDataString(name)}/{Uri.EscapeDataString(User)}",
                   JsonContent.Create(new { configure = ".*", write = ".*", read = ".*" }), cancellationToken))
            permit.EnsureSuccessStatusCode();
        VhostsAlive[name] = this;
        var url = new UriBuilder(_amqp) { Path = "/" + Uri.EscapeDataString(name) }.Uri.ToString();
        return new Vhost(this, name, url);
    }

    internal async Task DeleteVhostAsync(string name)
    {
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            using var _ = await _management.DeleteAsync($"api/vhosts/{Uri.EscapeDataString(name)}", timeout.Token);
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
        {
            Console.Error.WriteLine($"  (could not delete vhost {name}: {ex.Message})");
        }
        finally
        {
            VhostsAlive.TryRemove(name, out _);
        }
    }

    /// <summary>Deletes the vhosts still alive (on an interrupted run).</summary>
    public static void DeleteAllSync()
    {
        foreach (var (name, broker) in VhostsAlive.ToList())
            broker.DeleteVhostAsync(name).Wait(TimeSpan.FromSeconds(10));
    }

    public void Dispose() => _management.Dispose();
}

/// <summary>One scenario's vhost, with an AMQP connection of the bench's own to look at its queues.</summary>
public sealed class Vhost(Broker broker, string name, string url) : IAsyncDisposable
{
    IConnection? _connection;
    IChannel? _probe;

    public string Name { get; } = name;

    public string Url { get; } = url;

    public async Task<IConnection> ConnectionAsync(CancellationToken cancellationToken) =>
        _connection ??= await BrokerConnection.ConnectAsync(Url, $"lanequeue-bench-{Name}", cancellationToken);

    /// <summary>Ready messages and consumers of a queue (passive queue.declare: exact, unlike the management API's
    /// sampled numbers); null when the queue does not exist yet.</summary>
    public async Task<(uint Ready, uint Consumers)?> QueueAsync(string queue, CancellationToken cancellationToken)
    {
        var connection = await ConnectionAsync(cancellationToken);
        if (_probe is not { IsOpen: true })
        {
            if (_probe is not null)
                await _probe.DisposeAsync();
            _probe = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
        }
        try
        {
            var ok = await _probe.QueueDeclarePassiveAsync(queue, cancellationToken);
            return (ok.MessageCount, ok.ConsumerCount);
        }
        catch (OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == 404)
        {
            return null; // the channel is closed by the broker; the next call opens another
        }
    }

    /// <summary>Waits (bounded) until every queue has at least <paramref name="consumers"/> consumers.</summary>
    public async Task WaitForConsumersAsync(IReadOnlyList<string> queues, int consumers, TimeSpan timeout,
        Func<string?> failure, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            if (failure() is { } problem)
                throw new InvalidOperationException(problem);
            var ready = true;
            foreach (var queue in queues)
            {
                if (await QueueAsync(queue, cancellationToken) is not { } q || q.Consumers < consumers)
                {
                    ready = false;
                    break;
                }
            }
            if (ready)
                return;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"queues {string.Join(", ", queues)} of vhost {Name} did not reach {consumers} consumers within {timeout.TotalSeconds:0} s");
            await Task.Delay(50, cancellationToken);
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (_probe is not null)
                await _probe.DisposeAsync();
            if (_connection is not null)
                await _connection.DisposeAsync();
        }
        catch (Exception ex) when (ex is OperationInterruptedException or AlreadyClosedException or IOException)
        {
        }
        await broker.DeleteVhostAsync(Name);
    }
}
