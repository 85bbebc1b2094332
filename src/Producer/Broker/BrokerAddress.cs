using System.Globalization;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;

namespace LaneQueue.Producer;

/// <summary>
/// A LaneQueue broker URL, parsed: <c>amqp[s]://[user[:password]@]host[:port][,host[:port]...][/vhost][?options]</c>.
/// Several hosts (comma-separated) are the nodes of one cluster: clients connect to the first that answers and
/// recover to any of them. Options follow RabbitMQ's URI query parameters: <c>cacertfile</c> (PEM CA(s) the server
/// certificate must chain to; default: the system's roots), <c>certfile</c> + <c>keyfile</c> (PEM client certificate for
/// mutual TLS), <c>server_name_indication</c> (name expected in the server certificate; default: the host),
/// <c>verify=verify_none</c> (accept any server certificate: local development only).
/// The password may also come from the file named by <c>LANEQUEUE_RABBITMQ_PASSWORD_FILE</c> when the URL has none.
/// </summary>
internal sealed record BrokerAddress
{
    /// <summary>File holding the password (e.g. a mounted secret), used when the URL carries none.</summary>
    public const string PasswordFileVariable = "LANEQUEUE_RABBITMQ_PASSWORD_FILE";

    public required string Scheme { get; init; }

    public required IReadOnlyList<(string Host, int Port)> Hosts { get; init; }

    public string? UserName { get; init; }

    public string? Password { get; init; }

    public string VirtualHost { get; init; } = "/";

    public string? CaCertFile { get; init; }

    public string? CertFile { get; init; }

    public string? KeyFile { get; init; }

    public string? ServerName { get; init; }

    public bool VerifyPeer { get; init; } = true;

    public bool IsTls => Scheme == "amqps";

    public bool IsCluster => Hosts.Count > 1;

    public static BrokerAddress Parse(string url) =>
        TryParse(url, out var address, out var error) ? address! : throw new FormatException(error);

    public static bool TryParse(string? url, out BrokerAddress? address, out string? error)
    {
        address = null;
        error = null;
        if (string.IsNullOrWhiteSpace(url))
        {
            error = "the broker URL is empty";
            return false;
        }
        var schemeEnd = url.IndexOf("://", StringComparison.Ordinal);
        var scheme = schemeEnd > 0 ? url[..schemeEnd].ToLowerInvariant() : "";
        if (scheme is not ("amqp" or "amqps"))
        {
            error = $"the broker URL must start with amqp:// or amqps:// (got '{Redact(url)}')";
            return false;
        }
        var rest = url[(schemeEnd + 3)..];
        var query = "";
        if (rest.IndexOf('?', StringComparison.Ordinal) is var q and >= 0)
        {
            query = rest[(q + 1)..];
            rest = rest[..q];
        }
        var path = "";
        if (rest.IndexOf('/', StringComparison.Ordinal) is var slash and >= 0)
        {
            path = rest[(slash + 1)..];
            rest = rest[..slash];
        }
        string? user = null, password = null;
        if (rest.LastIndexOf('@') is var at and >= 0)
        {
            var info = rest[..at];
            rest = rest[(at + 1)..];
            var colon = info.IndexOf(':', StringComparison.Ordinal);
            user = Uri.UnescapeDataString(colon >= 0 ? info[..colon] : info);
            password = colon >= 0 ? Uri.UnescapeDataString(info[(colon + 1)..]) : null;
        }
        var defaultPort = scheme == "amqps" ? 5671 : 5672;
        var hosts = new List<(string, int)>();
        foreach (var part in rest.Split(',', StringSplitOptions.TrimEntries))
        {
            if (!TryHost(part, defaultPort, out var host, out var port))
            {
                error = $"bad host '{part}' in the broker URL '{Redact(url)}' (expected host[:port], several separated by commas)";
                return false;
            }
            hosts.Add((host, port));
        }

        var options = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var pair in query.Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = pair.IndexOf('=', StringComparison.Ordinal);
            options[Uri.UnescapeDataString(eq >= 0 ? pair[..eq] : pair)] = eq >= 0 ? Uri.UnescapeDataString(pair[(eq + 1)..]) : "";
        }
        foreach (var key in options.Keys)
        {
            if (key is not ("cacertfile" or "certfile" or "keyfile" or "server_name_indication" or "verify" or "heartbeat" or "connection_timeout"))
            {
                error = $"unknown option '{key}' in the broker URL (known: cacertfile, certfile, keyfile, server_name_indication, verify)";
                return false;
            }
        }
        var verify = options.GetValueOrDefault("verify", "verify_peer");
        if (verify is not ("verify_peer" or "verify_none"))
        {
            error = $"verify must be verify_peer or verify_none, got '{verify}'";
            return false;
        }
        if (options.ContainsKey("certfile") != options.ContainsKey("keyfile"))
        {
            error = "certfile and keyfile go together (PEM client certificate and its key)";
            return false;
        }
        if (password is null && Environment.GetEnvironmentVariable(PasswordFileVariable) is { Length: > 0 } passwordFile)
        {
            try
            {
                password = File.ReadAllText(passwordFile).TrimEnd('\r', '\n');
            }
            catch (IOException ex)
            {
                error = $"cannot read the password file named by {PasswordFileVariable}: {ex.Message}";
                return false;
            }
        }
        address = new BrokerAddress
        {
            Scheme = scheme,
            Hosts = hosts,
            UserName = user is { Length: > 0 } ? user : null,
            Password = password,
            VirtualHost = path.Trim('/') is { Length: > 0 } vhost ? Uri.UnescapeDataString(vhost) : "/",
            CaCertFile = options.GetValueOrDefault("cacertfile"),
            CertFile = options.GetValueOrDefault("certfile"),
            KeyFile = options.GetValueOrDefault("keyfile"),
            ServerName = options.GetValueOrDefault("server_name_indication"),
            VerifyPeer = verify == "verify_peer",
        };
        return true;
    }

    static bool TryHost(string text, int defaultPort, out string host, out int port)
    {
        host = "";
        port = defaultPort;
        if (text.Length == 0)
        {
            host = "localhost";
            return true;
        }
        string portText;
        if (text.StartsWith('['))
        {
            var close = text.IndexOf(']', StringComparison.Ordinal);
            if (close < 0)
                return false;
            host = text[1..close];
            portText = text[(close + 1)..].TrimStart(':');
        }
        else
        {
            var colon = text.LastIndexOf(':');
            host = colon >= 0 ? text[..colon] : text;
            portText = colon >= 0 ? text[(colon + 1)..] : "";
        }
        if (portText.Length > 0 && !(int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out port) && port is > 0 and < 65536))
            return false;
        return host.Length > 0 && !host.Contains('@', StringComparison.Ordinal);
    }

    /// <summary>The URL without its password (for logs and errors); never throws.</summary>
    public static string Redact(string url)
    {
        if (string.IsNullOrEmpty(url))
            return url;
        var schemeEnd = url.IndexOf("://", StringComparison.Ordinal);
        var start = schemeEnd >= 0 ? schemeEnd + 3 : 0;
        var end = url.IndexOfAny(['/', '?'], start) is var e and >= 0 ? e : url.Length;
        var at = url.LastIndexOf('@', end - 1, end - start);
        if (at < 0)
            return url;
        var colon = url.IndexOf(':', start, at - start);
        return colon < 0 ? url : url[..(colon + 1)] + "***" + url[at..];
    }

    /// <summary>The client certificate (certfile + keyfile), or null.</summary>
    public X509Certificate2? ClientCertificate() =>
        CertFile is { } cert && KeyFile is { } key ? X509Certificate2.CreateFromPemFile(cert, key) : null;

    /// <summary>
    /// Validates the server certificate: chain to <see cref="CaCertFile"/> (or the system roots) and the expected name;
    /// with <c>verify=verify_none</c>, anything goes.
    /// </summary>
    public RemoteCertificateValidationCallback CertificateValidation()
    {
        if (!VerifyPeer)
            return (_, _, _, _) => true;
        if (CaCertFile is not { } caFile)
            return (_, _, _, errors) => errors == SslPolicyErrors.None;
        var roots = new X509Certificate2Collection();
        roots.ImportFromPemFile(caFile);
        return (_, certificate, _, errors) =>
        {
            if (certificate is null || errors.HasFlag(SslPolicyErrors.RemoteCertificateNotAvailable) || errors.HasFlag(SslPolicyErrors.RemoteCertificateNameMismatch))
                return false;
            using var chain = new X509Chain();
            chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            chain.ChainPolicy.CustomTrustStore.AddRange(roots);
            chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            var server = certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
            return chain.Build(server);
        };
    }
}
