using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using LaneQueue.Producer;

namespace LaneQueue.Dashboard;

/// <summary>
/// What the dashboard reads from the RabbitMQ management API. How long the oldest waiting task of each lane has waited,
/// from <c>head_message_timestamp</c> (the task's <c>timestamp</c> property, set by the producer from <c>created_at</c>, whole
/// seconds). The broker reports it without delivering the message, so reading it never counts against a quorum lane's
/// delivery limit; classic lane queues report it, quorum queues on RabbitMQ 3.10 do not (then the wait is unknown). And, for
/// the delayed tasks, a peek at a queue's first messages (<see cref="PeekAsync"/>).
/// </summary>
internal sealed class QueueHeads(HttpClient http, string virtualHost)
{
    /// <summary>Reads the management API at <paramref name="managementUrl"/> as the broker URL's user, unless others are given.</summary>
    public static QueueHeads Create(string managementUrl, string brokerUrl, string? user, string? password)
    {
        var broker = BrokerAddress.Parse(brokerUrl);
        var http = new HttpClient { BaseAddress = new Uri(managementUrl.TrimEnd('/') + "/"), Timeout = TimeSpan.FromSeconds(10) };
        var credentials = Encoding.UTF8.GetBytes($"{user ?? broker.UserName ?? "guest"}:{password ?? broker.Password ?? "guest"}");
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(credentials));
        return new QueueHeads(http, broker.VirtualHost);
    }

    /// <summary>The management client for <paramref name="options"/>' <see cref="LaneQueueDashboardOptions.ManagementUrl"/>; null without one.</summary>
    public static QueueHeads? For(LaneQueueDashboardOptions options, ProducerOptions broker) =>
        options.ManagementUrl is { } management ? Create(management, broker.RabbitMqUrl, options.ManagementUser, options.ManagementPassword) : null;

    /// <summary>
    /// The first <paramref name="count"/> messages of <paramref name="queue"/>, taken with basic.get and put back at once
    /// (<c>ackmode: ack_requeue_true</c>; a requeued message keeps its place and its original expiry). Bodies longer than
    /// <paramref name="truncateBytes"/> come cut (<c>payload_bytes</c> says how long they are); each message's <c>message_count</c>
    /// is how many the queue held after it was taken.
    /// </summary>
    public async Task<JsonDocument> PeekAsync(string queue, int count, int truncateBytes, CancellationToken cancellationToken)
    {
        var request = JsonSerializer.Serialize(new { count, ackmode = "ack_requeue_true", encoding = "auto", truncate = truncateBytes });
        using var content = new StringContent(request, Encoding.UTF8, "application/json");
        using var response = await http.PostAsync($"api/queues/{Uri.EscapeDataString(virtualHost)}/{Uri.EscapeDataString(queue)}/get", content, cancellationToken);
        response.EnsureSuccessStatusCode();
        return await JsonDocument.ParseAsync(await response.Content.ReadAsStreamAsync(cancellationToken), cancellationToken: cancellationToken);
    }

    /// <summary>Queue name → seconds its head message has waited (null: empty, or no timestamp reported).</summary>
    public async Task<Dictionary<string, double?>> WaitsAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        using var response = await http.GetAsync($"api/queues/{Uri.EscapeDataString(virtualHost)}?columns=name,head_message_timestamp", cancellationToken);
        response.EnsureSuccessStatusCode();
        using var document = JsonDocument.Parse(await response.Content.ReadAsStreamAsync(cancellationToken));
        var waits = new Dictionary<string, double?>(StringComparer.Ordinal);
        foreach (var queue in document.RootElement.EnumerateArray())
        {
            var head = queue.TryGetProperty("head_message_timestamp", out var at) && at.ValueKind == JsonValueKind.Number ? at.GetInt64() : (long?)null;
            waits[queue.GetProperty("name").GetString()!] = head is { } seconds ? Math.Max(0, (now - DateTimeOffset.FromUnixTimeSeconds(seconds)).TotalSeconds) : null;
        }
        return waits;
    }
}
