using Microsoft.Extensions.Options;

namespace LaneQueue.Dashboard;

/// <summary>Dashboard settings (<see cref="DashboardRegistration.AddLaneQueueDashboard"/>).</summary>
public sealed class LaneQueueDashboardOptions
{
    /// <summary>
    /// The authorization policy (registered by the host with <c>AddAuthorization</c>) a user must satisfy to act: redrive,
    /// purge, pause / resume, handler mode, schedule changes, cancelling a delayed task. Null (the default): the dashboard is read-only, every action answers 403 and the
    /// page shows no action buttons.
    /// </summary>
    public string? ActionsPolicy { get; set; }

    /// <summary>How often the dashboard reads the lane depths and refreshes its snapshot (default 1 s).</summary>
    public TimeSpan SampleInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How many depth samples each lane's sparkline shows (default 120: two minutes at 1 s).</summary>
    public int DepthSamples { get; set; } = 120;

    /// <summary>
    /// The RabbitMQ management API (e.g. <c>http://localhost:15672</c>), for each lane's oldest wait (the head message's
    /// timestamp, read without delivering it) and the Scheduled page's delayed tasks. Null (the default): the lanes page shows
    /// no oldest wait and the Scheduled page no delayed tasks.
    /// </summary>
    public string? ManagementUrl { get; set; }

    /// <summary>User for <see cref="ManagementUrl"/> (null: the broker URL's user; it needs the management tag).</summary>
    public string? ManagementUser { get; set; }

    /// <summary>Password for <see cref="ManagementUrl"/> (null: the broker URL's password).</summary>
    public string? ManagementPassword { get; set; }

    /// <summary>
    /// The Scheduled page's delayed tasks due soon: how many it lists, and how many messages it peeks at the head of each
    /// delay-tree hop queue to find them (default 50, 1 to 1000). Needs <see cref="ManagementUrl"/>.
    /// </summary>
    public int DelayedTasksShown { get; set; } = 50;

    /// <summary>
    /// The delay tree is read at most this often, for all viewers together, and only while a Scheduled page asks
    /// (default 2 s, 100 ms to 1 min).
    /// </summary>
    public TimeSpan DelayedReadInterval { get; set; } = TimeSpan.FromSeconds(2);
}

internal sealed class LaneQueueDashboardOptionsValidator : IValidateOptions<LaneQueueDashboardOptions>
{
    public ValidateOptionsResult Validate(string? name, LaneQueueDashboardOptions options)
    {
        var problems = new List<string>();
        if (options.SampleInterval < TimeSpan.FromMilliseconds(100) || options.SampleInterval > TimeSpan.FromMinutes(1))
            problems.Add($"LaneQueueDashboardOptions.SampleInterval must be from 100 ms to 1 min, got {options.SampleInterval}");
        if (options.DepthSamples is < 2 or > 10_000)
            problems.Add($"LaneQueueDashboardOptions.DepthSamples must be from 2 to 10000, got {options.DepthSamples}");
        if (options.DelayedTasksShown is < 1 or > 1000)
            problems.Add($"LaneQueueDashboardOptions.DelayedTasksShown must be from 1 to 1000, got {options.DelayedTasksShown}");
        if (options.DelayedReadInterval < TimeSpan.FromMilliseconds(100) || options.DelayedReadInterval > TimeSpan.FromMinutes(1))
            problems.Add($"LaneQueueDashboardOptions.DelayedReadInterval must be from 100 ms to 1 min, got {options.DelayedReadInterval}");
        if (options.ManagementUrl is { } management
            && (!Uri.TryCreate(management, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https")))
            problems.Add($"LaneQueueDashboardOptions.ManagementUrl must be an http(s) URL such as http://localhost:15672, got '{management}'");
        if (options.ActionsPolicy is { } policy && string.IsNullOrWhiteSpace(policy))
            problems.Add("LaneQueueDashboardOptions.ActionsPolicy must be a policy name or null (read-only), got an empty string");
        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
    }
}
