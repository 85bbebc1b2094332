using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using LaneQueue.Producer;
using Testcontainers.RabbitMq;

namespace LaneQueue.Tests.Broker;

/// <summary>
/// The real RabbitMQ every integration test talks to: <c>LANEQUEUE_RABBITMQ_URL</c> wins (management API at
/// <c>LANEQUEUE_RABBITMQ_MANAGEMENT_URL</c>, default http://host:15672); else a Testcontainers container where a
/// Docker engine answers; else every test fails saying how to start a broker. Tests never skip.
/// </summary>
public sealed class BrokerFixture : IAsyncLifetime
{
    public const string ManagementUrlVariable = "LANEQUEUE_RABBITMQ_MANAGEMENT_URL";

    RabbitMqContainer? _container;
    HttpClient? _management;
    Uri? _amqp;
    string? _failure;

    public async Task InitializeAsync()
    {
        var url = Environment.GetEnvironmentVariable(BrokerConnection.UrlVariable);
        string? managementUrl = Environment.GetEnvironmentVariable(ManagementUrlVariable);
        if (string.IsNullOrEmpty(url))
        {
            if (!DockerAnswers())
            {
                _failure = $"No RabbitMQ for the integration tests: {BrokerConnection.UrlVariable} is not set and no Docker engine answers. " +
                           $"Start a broker with 'bash scripts/broker-up.sh' and run the tests with 'bash scripts/test.sh', " +
                           $"or set {BrokerConnection.UrlVariable}=amqp://guest:guest@localhost:5672/ (management API on port 15672).";
                return;
            }
            _container = new RabbitMqBuilder("rabbitmq:3.13-management").WithPortBinding(15672, true).Build();
            await _container.StartAsync();
            url = _container.GetConnectionString();
            managementUrl = $"http://{_container.Hostname}:{_container.GetMappedPublicPort(15672)}";
        }

        _amqp = new Uri(url);
        managementUrl ??= $"http://{_amqp.Host}:15672";
        var credentials = _amqp.UserInfo.Length > 0 ? Uri.UnescapeDataString(_amqp.UserInfo) : "guest:guest";
        _management = new HttpClient { BaseAddress = new Uri(managementUrl.TrimEnd('/') + "/"), Timeout = TimeSpan.FromSeconds(30) };
        _management.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes(credentials)));
        try
        {
            using var overview = await _management.GetAsync("api/overview");
            overview.EnsureSuccessStatusCode();
        }
        catch (Exception ex)
        {
            _failure = $"RabbitMQ management API at {managementUrl} does not answer ({ex.Message}). " +
                       $"Enable the rabbitmq_management plugin or set {ManagementUrlVariable}; 'bash scripts/broker-up.sh' does both.";
        }
    }

    public HttpClient Management => _management ?? throw new InvalidOperationException(_failure);

    string User => _amqp!.UserInfo.Length > 0 ? Uri.UnescapeDataString(_amqp.UserInfo.Split(':')[0]) : "guest";

    /// <summary>A fresh vhost for one test, deleted when disposed.</summary>
    public async Task<TestVhost> CreateVhostAsync(string? name = null)
    {
        if (_failure is not null)
            Assert.Fail(_failure);
        var vhost = name ?? $"lq-test-{Guid.NewGuid():N}"[..20];
        using (var put = await Management.PutAsync($"api/vhosts/{Uri.EscapeDataString(vhost)}", JsonContent.Create(new { })))
            put.EnsureSuccessStatusCode();
        using (var permit = await Management.PutAsync(
                   $"api/permissions/{Uri.EscapeDataString(vhost)}/{Uri.EscapeDataString(User)}",
                   JsonContent.Create(new { configure = ".*", write = ".*", read = ".*" })))
            permit.EnsureSuccessStatusCode();
        var url = new UriBuilder(_amqp!) { Path = "/" + Uri.EscapeDataString(vhost) }.Uri.ToString();
        return new TestVhost(this, vhost, url);
    }

    internal async Task DeleteVhostAsync(string vhost)
    {
        using var _ = await Management.DeleteAsync($"api/vhosts/{Uri.EscapeDataString(vhost)}");
    }

    static bool DockerAnswers()
    {
        try
        {
            using var process = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("docker", "info")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            });
            if (process is null)
                return false;
            if (!process.WaitForExit(10_000))
            {
                process.Kill();
                return false;
            }
            return process.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false;
        }
    }

    public async Task DisposeAsync()
    {
        _management?.Dispose();
        if (_container is not null)
            await _container.DisposeAsync();
    }
}

[CollectionDefinition(Name)]
public sealed class BrokerCollection : ICollectionFixture<BrokerFixture>
{
    public const string Name = "broker";
}
