using RabbitMQ.Client;

namespace LaneQueue.Producer;

/// <summary>Turns a broker URL into a RabbitMQ.Client connection; the one place that knows the URL's defaults.</summary>
public static class BrokerConnection
{
    /// <summary>Environment variable that holds the broker URL.</summary>
    public const string UrlVariable = "LANEQUEUE_RABBITMQ_URL";

    public const string DefaultUrl = "amqp://guest:guest@localhost:5672/lanequeue";

    /// <summary>The URL from <see cref="UrlVariable"/>, else <see cref="DefaultUrl"/>.</summary>
    public static string UrlFromEnvironment() =>
        Environment.GetEnvironmentVariable(UrlVariable) is { Length: > 0 } url ? url : DefaultUrl;

    public static ConnectionFactory Factory(string url, string clientName) => new()
    {
        Uri = new Uri(url),
        ClientProvidedName = clientName,
        AutomaticRecoveryEnabled = true,
        TopologyRecoveryEnabled = true,
        NetworkRecoveryInterval = TimeSpan.FromSeconds(2),
        RequestedHeartbeat = TimeSpan.FromSeconds(10),
    };

    public static Task<IConnection> ConnectAsync(string url, string clientName, CancellationToken cancellationToken = default) =>
        Factory(url, clientName).CreateConnectionAsync(cancellationToken);

    /// <summary>Shows a URL without its password, for logs and error messages.</summary>
    public static string Redact(string url)
    {
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || string.IsNullOrEmpty(uri.UserInfo))
            return url;
        var user = uri.UserInfo.Split(':')[0];
        return new UriBuilder(uri) { UserName = user, Password = "***" }.Uri.ToString();
    }
}
