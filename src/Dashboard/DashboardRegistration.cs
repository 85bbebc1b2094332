using LaneQueue.Producer;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace LaneQueue.Dashboard;

/// <summary>Adds the LaneQueue dashboard to an ASP.NET Core host (the way Hangfire's dashboard is added).</summary>
public static class DashboardRegistration
{
    /// <summary>
    /// Registers the dashboard: the producer it reads the fleet through (<c>AddLaneQueueProducer</c>, bound from the
    /// <c>LaneQueue</c> configuration section unless the host registered it already), a background reader of heartbeats and
    /// depths, antiforgery and authorization. Actions stay off until <see cref="LaneQueueDashboardOptions.ActionsPolicy"/>
    /// names a policy the host registers.
    /// </summary>
    public static IServiceCollection AddLaneQueueDashboard(this IServiceCollection services, Action<LaneQueueDashboardOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var options = services.AddOptions<LaneQueueDashboardOptions>().ValidateOnStart();
        if (configure is not null)
            options.Configure(configure);
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<LaneQueueDashboardOptions>, LaneQueueDashboardOptionsValidator>());
        services.AddLaneQueueProducer();
        services.AddAntiforgery();
        services.AddAuthorization();
        services.TryAddSingleton<FleetSampler>();
        services.TryAddSingleton<DelayedTasks>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, FleetSampler>(provider => provider.GetRequiredService<FleetSampler>()));
        return services;
    }

    /// <summary>
    /// Maps the dashboard's page, assets and JSON endpoints under <paramref name="prefix"/>. The result is the endpoint group:
    /// <c>.RequireAuthorization("...")</c> on it protects the reading too (by default anyone who reaches the host may read).
    /// </summary>
    public static RouteGroupBuilder MapLaneQueueDashboard(this IEndpointRouteBuilder endpoints, string prefix = "/lanequeue")
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        ArgumentNullException.ThrowIfNull(prefix);
        if (endpoints.ServiceProvider.GetService<FleetSampler>() is null)
            throw new InvalidOperationException("MapLaneQueueDashboard needs services.AddLaneQueueDashboard() first");
        return DashboardEndpoints.Map(endpoints.MapGroup(prefix.TrimEnd('/')));
    }
}
