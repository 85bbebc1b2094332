using System.Collections.Concurrent;
using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;

namespace LaneQueue.Producer;

/// <summary>Turns a broker URL into a RabbitMQ.Client connection; the one place that knows the URL's defaults.</summary>
internal static class BrokerConnection
{
    /// <summary>Environment variable that holds the broker URL.</summary>
    public const string UrlVariable = "LANEQUEUE_RABBITMQ_URL";

    public const string DefaultUrl = "amqp://guest:guest@localhost:5672/lanequeue";

    /// <summary>The URL from <see cref="UrlVariable"/>, else <see cref="DefaultUrl"/>.</summary>
    public static string UrlFromEnvironment() =>
        Environment.GetEnvironmentVariable(UrlVariable) is { Length: > 0 } url ? url : DefaultUrl;

    /// <summary>A connection factory for the URL (see <see cref="BrokerAddress"/> for its form: host lists, TLS options).</summary>
    public static ConnectionFactory Factory(string url, string clientName)
    {
        var address = BrokerAddress.Parse(url);
        var (host, port) = address.Hosts[0];
        var factory = new ConnectionFactory
        {
            HostName = host,
            Port = port,
            VirtualHost = address.VirtualHost,
            ClientProvidedName = clientName,
            AutomaticRecoveryEnabled = true,
            TopologyRecoveryEnabled = true,
            TopologyRecoveryFilter = TransientTopologyOnly(),
            NetworkRecoveryInterval = TimeSpan.FromSeconds(2),
            RequestedHeartbeat = TimeSpan.FromSeconds(10),
        };
        if (address.UserName is { } user)
            factory.UserName = user;
        if (address.Password is { } password)
            factory.Password = password;
        if (address.IsTls)
            factory.Ssl = Ssl(address, host);
        return factory;
    }

    /// <summary>
    /// What automatic recovery declares again: only what the broker lost with the connection (exclusive, auto-delete and
    /// server-named queues, non-durable exchanges, and the bindings to them); consumers always. Durable queues, exchanges
    /// and their bindings are still on the broker. Declaring them again gains nothing and can fail: a classic queue whose
    /// node is down answers 404, and RabbitMQ.Client 7.2 then retries the whole recovery every 2 s until that node is back.
    /// A producer in a 3-node cluster never reconnected so (its connection had declared the classic
    /// <c>lanequeue.external.*</c> queues of the stopped node).
    /// </summary>
    internal static TopologyRecoveryFilter TransientTopologyOnly()
    {
        // The queue and exchange filters run before the binding filter in each recovery; a server-named queue has a new
        // amq.gen- name by the time its bindings are recovered.
        var transient = new ConcurrentDictionary<string, bool>(StringComparer.Ordinal);
        return new TopologyRecoveryFilter
        {
            // Server-named queues are known by their amq.gen- prefix: their names change with every recovery, so none is kept.
            QueueFilter = queue => queue.IsServerNamed || Keep(queue.Name, !queue.Durable || queue.Exclusive || queue.AutoDelete),
            ExchangeFilter = exchange => Keep(exchange.Name, !exchange.Durable || exchange.AutoDelete),
            BindingFilter = binding => transient.ContainsKey(binding.Destination) || binding.Destination.StartsWith("amq.gen-", StringComparison.Ordinal),
        };

        bool Keep(string name, bool isTransient)
        {
            if (isTransient)
                transient[name] = true;
            return isTransient;
        }
    }

    /// <summary>The endpoints to try, in order (one per host of the URL), each with the URL's TLS settings.</summary>
    public static IReadOnlyList<AmqpTcpEndpoint> Endpoints(string url)
    {
        var address = BrokerAddress.Parse(url);
        return [.. address.Hosts.Select(h => new AmqpTcpEndpoint(h.Host, h.Port, address.IsTls ? Ssl(address, h.Host) : new SslOption()))];
    }

    static SslOption Ssl(BrokerAddress address, string host)
    {
        var ssl = new SslOption
        {
            Enabled = true,
            ServerName = address.ServerName ?? host,
            Version = SslProtocols.Tls12 | SslProtocols.Tls13,
            CertificateValidationCallback = address.CertificateValidation(),
        };
        if (!address.VerifyPeer)
            ssl.AcceptablePolicyErrors = SslPolicyErrors.RemoteCertificateChainErrors | SslPolicyErrors.RemoteCertificateNameMismatch | SslPolicyErrors.RemoteCertificateNotAvailable;
        if (address.ClientCertificate() is { } certificate)
            ssl.Certs = new X509CertificateCollection { certificate };
        return ssl;
    }

    /// <summary>Connects to the first host of the URL that answers; automatic recovery later tries all of them.</summary>
    public static Task<IConnection> ConnectAsync(string url, string clientName, CancellationToken cancellationToken = default) =>
        Factory(url, clientName).CreateConnectionAsync(Endpoints(url), clientName, cancellationToken);

    /// <summary>Shows a URL without its password, for logs and error messages.</summary>
    public static string Redact(string url) => BrokerAddress.Redact(url);

    /// <summary>Whether an exception means "the broker cannot be reached right now" (worth waiting for recovery), not a refusal.</summary>
    public static bool IsConnectionFailure(Exception exception) => exception switch
    {
        OperationInterruptedException { ShutdownReason.ReplyCode: 403 or 404 or 406 } => false, // access refused, not found, precondition: a refusal
        AlreadyClosedException or OperationInterruptedException or BrokerUnreachableException or ConnectFailureException
            or IOException or System.Net.Sockets.SocketException or TimeoutException => true,
        _ => exception.InnerException is { } inner && IsConnectionFailure(inner),
    };
}
