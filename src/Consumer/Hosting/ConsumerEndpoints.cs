using LaneQueue.Contracts;
using LaneQueue.Producer;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace LaneQueue.Consumer;

/// <summary>The consumer's HTTP side: OpenTelemetry wiring, health (liveness / readiness) and the Prometheus scrape endpoint.</summary>
public static class ConsumerEndpoints
{
    /// <summary>
    /// Metrics (<c>LaneQueue</c> and <c>MassTransit</c> meters) and traces (both activity sources), exported to Prometheus
    /// at <c>/metrics</c> and, when <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> (or <c>LaneQueue:OtlpEndpoint</c>) is set, over OTLP.
    /// </summary>
    public static IHostApplicationBuilder AddLaneQueueTelemetry(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var otlp = builder.Configuration["LaneQueue:OtlpEndpoint"] ?? builder.Configuration["OTEL_EXPORTER_OTLP_ENDPOINT"];
        var telemetry = builder.Services.AddOpenTelemetry()
            .WithMetrics(metrics =>
            {
                metrics.AddMeter(LaneQueueTelemetry.Name, "MassTransit").AddPrometheusExporter();
                if (!string.IsNullOrEmpty(otlp))
                    metrics.AddOtlpExporter(o => o.Endpoint = new Uri(otlp));
            });
        // Spans are only recorded when there is somewhere to send them: with no exporter, recording MassTransit's
        // receive/consume/send spans for every task costs CPU for nothing (trace context still flows through the headers).
        if (!string.IsNullOrEmpty(otlp))
            telemetry.WithTracing(tracing => tracing.AddSource(LaneQueueTelemetry.Name, "MassTransit").AddOtlpExporter(o => o.Endpoint = new Uri(otlp)));
        builder.Services.AddHealthChecks()
            .AddCheck("process", () => HealthCheckResult.Healthy(), tags: ["live"])
            .AddCheck<LanesReadyCheck>("lanes", tags: ["ready"]);
        return builder;
    }

    /// <summary>Maps <c>/health/live</c>, <c>/health/ready</c> (broker connection, lane endpoints) and <c>/metrics</c>.</summary>
    public static IEndpointRouteBuilder MapLaneQueueEndpoints(this IEndpointRouteBuilder app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.MapHealthChecks("/health/live", new HealthCheckOptions { Predicate = check => check.Tags.Contains("live") });
        app.MapHealthChecks("/health/ready", new HealthCheckOptions { Predicate = check => check.Tags.Contains("ready") });
        app.MapPrometheusScrapingEndpoint();
        return app;
    }
}

/// <summary>Ready when the bus is connected and every lane has its receive endpoint (paused ones count as ready).</summary>
internal sealed class LanesReadyCheck(MassTransit.Transports.IBusInstance<ILaneQueueBus> bus, LaneEndpoints endpoints, IOptions<LaneQueueOptions> options) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var health = bus.BusControl.CheckHealth();
        // Degraded is how MassTransit reports stopped endpoints, which is what a paused lane is.
        if (health.Status is not (MassTransit.BusHealthStatus.Healthy or MassTransit.BusHealthStatus.Degraded))
            return Task.FromResult(HealthCheckResult.Unhealthy($"bus {health.Status}: {health.Description}"));
        var missing = SessionLanes.All.Where(lane => !endpoints.IsReady(lane)).Select(lane => lane.WireName()).ToList();
        if (options.Value.Topology == LaneTopology.QueuePerLane && missing.Count > 0)
            return Task.FromResult(HealthCheckResult.Unhealthy($"no receive endpoint yet for lane(s) {string.Join(", ", missing)}"));
        return Task.FromResult(HealthCheckResult.Healthy("bus connected, lane endpoints up"));
    }
}
