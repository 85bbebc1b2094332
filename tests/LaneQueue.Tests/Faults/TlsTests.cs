using System.Diagnostics;
using LaneQueue.Contracts;
using LaneQueue.Producer;
using LaneQueue.Tests.Broker;
using Microsoft.Extensions.Hosting;
using Xunit.Abstractions;

namespace LaneQueue.Tests.Faults;

/// <summary>
/// A node of its own listening on TLS only (no plain AMQP port), with a CA, server and client certificates made with
/// openssl for this test; it requires a client certificate. Producer and consumer connect over amqps:// only.
/// </summary>
[Collection(FaultCollection.Name)]
public sealed class TlsTests(ITestOutputHelper output) : IAsyncLifetime
{
    int BasePort => _node!.Port;

    int TlsPort => _node!.Port + 1;

    readonly string _dir = Directory.CreateTempSubdirectory("lanequeue-tls-").FullName;
    FaultNode? _node;
    readonly List<IHost> _hosts = [];

    public async Task InitializeAsync()
    {
        await OpenSslAsync("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=LaneQueue test CA",
            "-keyout", "ca.key", "-out", "ca.pem");
        await MakeCertificateAsync("server", "/CN=localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth");
        await MakeCertificateAsync("client", "/CN=lanequeue-client", "extendedKeyUsage=clientAuth");
        // A second CA that signed nothing of this broker: trusting it alone must not be enough.
        await OpenSslAsync("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Other CA", "-keyout", "other.key", "-out", "other.pem");
        _node = await FaultNode.StartAsync("lq-tls", 5721, ports: 2, port => ["--no-tcp", "--tls-port", $"{port + 1}", "--tls-dir", _dir, "--verify-peer"]);
    }

    async Task MakeCertificateAsync(string name, string subject, string extensions)
    {
        await File.WriteAllTextAsync(Path.Combine(_dir, $"{name}.ext"), extensions + "\n");
        await OpenSslAsync("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", $"{name}.key", "-out", $"{name}.csr");
        await OpenSslAsync("x509", "-req", "-in", $"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
            "-extfile", $"{name}.ext", "-out", $"{name}.pem");
    }

    async Task OpenSslAsync(params string[] args)
    {
        var info = new ProcessStartInfo("openssl") { WorkingDirectory = _dir, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var arg in args)
            info.ArgumentList.Add(arg);
        using var process = Process.Start(info) ?? throw new InvalidOperationException("cannot run openssl (apt-get install openssl)");
        var errors = process.StandardError.ReadToEndAsync();
        await process.StandardOutput.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync(timeout.Token);
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"openssl {string.Join(' ', args)} failed: {await errors}");
    }

    string TlsUrl(string ca = "ca.pem", bool clientCertificate = true) =>
        $"amqps://guest:guest@localhost:{TlsPort}/?cacertfile={Path.Combine(_dir, ca)}" +
        (clientCertificate ? $"&certfile={Path.Combine(_dir, "client.pem")}&keyfile={Path.Combine(_dir, "client.key")}" : "");

    public async Task DisposeAsync()
    {
        foreach (var host in _hosts)
            await host.StopQuietlyAsync();
        if (_node is not null)
            await _node.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    static List<Exception> Chain(Exception exception)
    {
        var chain = new List<Exception>();
        for (Exception? e = exception; e is not null; e = e.InnerException)
        {
            chain.Add(e);
            if (e is AggregateException aggregate)
                chain.AddRange(aggregate.InnerExceptions.SelectMany(Chain));
        }
        return chain;
    }

    static string Describe(Exception exception) => string.Join(" <- ", Chain(exception).Select(e => $"{e.GetType().Name}: {e.Message}"));

    [Fact]
    public async Task Producer_and_consumer_work_over_TLS_only_with_a_client_certificate()
    {
        _hosts.Add(await ConsumerHost.StartAsync(TlsUrl(), name: "tls-consumer"));
        await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = TlsUrl() });
        var result = await producer.SubmitAndWaitAsync(ExternalTask.Create("tls-1", SessionLane.Query, new { secret = "over tls" }), TimeSpan.FromSeconds(30));
        Assert.True(result.Success, result.Error);
        Assert.Equal("over tls", result.Result.GetProperty("secret").GetString());

        // Every connection the broker has is TLS (producer, the consumer's bus, gate, fleet, publisher...).
        var connections = (await _node!.CtlAsync("list_connections", "--no-table-headers", "ssl", "peer_cert_subject")).Output
            .Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        output.WriteLine(string.Join("\n", connections));
        Assert.True(connections.Length >= 3, string.Join("\n", connections));
        Assert.All(connections, c => Assert.StartsWith("true", c, StringComparison.Ordinal));
        Assert.All(connections, c => Assert.Contains("lanequeue-client", c, StringComparison.Ordinal));

        // No plain AMQP port; no connection without a client certificate; none that trusts another CA.
        var plain = await Assert.ThrowsAsync<TaskRejectedException>(() => LaneQueueProducer.ConnectAsync(
            new ProducerOptions { RabbitMqUrl = $"amqp://guest:guest@127.0.0.1:{BasePort}/" }));
        Assert.StartsWith("cannot reach RabbitMQ at amqp://", plain.Message, StringComparison.Ordinal);
        Assert.Contains(Chain(plain), e => e is System.Net.Sockets.SocketException { SocketErrorCode: System.Net.Sockets.SocketError.ConnectionRefused });

        // Without a client certificate the broker ends the TLS handshake; trusting another CA, the client refuses the
        // broker's certificate. Both surface as "cannot reach" with the TLS failure inside, never as a connection.
        var noCertificate = await Assert.ThrowsAsync<TaskRejectedException>(() => LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = TlsUrl(clientCertificate: false) }));
        output.WriteLine($"no client certificate: {Describe(noCertificate)}");
        Assert.StartsWith("cannot reach RabbitMQ at amqps://", noCertificate.Message, StringComparison.Ordinal);
        Assert.Contains(Chain(noCertificate), e => e is System.Security.Authentication.AuthenticationException or IOException);
        var otherCa = await Assert.ThrowsAsync<TaskRejectedException>(() => LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = TlsUrl(ca: "other.pem") }));
        output.WriteLine($"server certificate from another CA: {Describe(otherCa)}");
        Assert.StartsWith("cannot reach RabbitMQ at amqps://", otherCa.Message, StringComparison.Ordinal);
        Assert.Contains(Chain(otherCa), e => e is System.Security.Authentication.AuthenticationException);
    }
}
