using LaneQueue.Producer;
using MassTransit;

namespace LaneQueue.Consumer;

/// <summary>
/// MassTransit's RabbitMQ host from a LaneQueue broker URL (<see cref="BrokerAddress"/>): the first host, every host of a
/// comma-separated list as a cluster node (MassTransit connects to one that answers and fails over to the others), TLS
/// with the URL's CA, client certificate and server name options.
/// </summary>
internal static class BrokerHost
{
    /// <summary>The queue a MassTransit receive endpoint's input address names (its last path segment).</summary>
    public static string QueueOf(Uri inputAddress) => inputAddress.AbsolutePath.Split('/')[^1];

    public static void Configure(IRabbitMqBusFactoryConfigurator cfg, string url, string connectionName)
    {
        ArgumentNullException.ThrowIfNull(cfg);
        var address = BrokerAddress.Parse(url);
        var (host, port) = address.Hosts[0];
        cfg.Host(host, (ushort)port, address.VirtualHost, connectionName, h =>
        {
            if (address.UserName is { } user)
                h.Username(user);
            if (address.Password is { } password)
                h.Password(password);
            h.Heartbeat(TimeSpan.FromSeconds(10));
            if (address.IsCluster)
            {
                h.UseCluster(c =>
                {
                    foreach (var (nodeHost, nodePort) in address.Hosts)
                        c.Node(nodeHost.Contains(':', StringComparison.Ordinal) ? $"[{nodeHost}]:{nodePort}" : $"{nodeHost}:{nodePort}");
                });
            }
            if (address.IsTls)
            {
                h.UseSsl(s =>
                {
                    s.ServerName = address.ServerName ?? host;
                    s.Protocol = System.Security.Authentication.SslProtocols.Tls12 | System.Security.Authentication.SslProtocols.Tls13;
                    s.CertificateValidationCallback = address.CertificateValidation();
                    if (!address.VerifyPeer)
                    {
                        s.AllowPolicyErrors(System.Net.Security.SslPolicyErrors.RemoteCertificateChainErrors
                                            | System.Net.Security.SslPolicyErrors.RemoteCertificateNameMismatch
                                            | System.Net.Security.SslPolicyErrors.RemoteCertificateNotAvailable);
                    }
                    if (address.ClientCertificate() is { } certificate)
                        s.Certificate = certificate;
                });
            }
        });
    }
}
