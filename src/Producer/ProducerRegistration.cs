using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace LaneQueue.Producer;

/// <summary>Registers the LaneQueue producer with dependency injection.</summary>
public static class ProducerRegistration
{
    /// <summary>
    /// Registers <see cref="ILaneQueueProducer"/> (a singleton) with <see cref="ProducerOptions"/> bound from the
    /// <c>LaneQueue</c> configuration section (the consumer's: one <c>LaneQueue:RabbitMqUrl</c> serves both), then
    /// <paramref name="configure"/>. The options are validated when the host starts; a failure names the setting.
    /// <para>
    /// In a host, a hosted service connects at start (failing the start when the broker cannot be reached or its lanes
    /// differ from the options) and the producer uses that connection; without a host, the first call connects, and a
    /// call after a failed connect tries again. The connection closes when the container is disposed.
    /// </para>
    /// </summary>
    public static IServiceCollection AddLaneQueueProducer(this IServiceCollection services, Action<ProducerOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var options = services.AddOptions<ProducerOptions>()
            .Configure<IServiceProvider>((o, provider) => provider.GetService<IConfiguration>()?.GetSection(ProducerOptions.Section).Bind(o))
            .ValidateOnStart();
        if (configure is not null)
            options.Configure(configure);
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ProducerOptions>, ProducerOptionsValidator>());
        services.TryAddSingleton<HostedProducer>();
        services.TryAddSingleton<ILaneQueueProducer>(provider => provider.GetRequiredService<HostedProducer>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, HostedProducer>(provider => provider.GetRequiredService<HostedProducer>()));
        return services;
    }

    /// <summary>Registers <see cref="ILaneQueueProducer"/> with the host's configuration (see the <see cref="IServiceCollection"/> overload).</summary>
    public static IHostApplicationBuilder AddLaneQueueProducer(this IHostApplicationBuilder builder, Action<ProducerOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddLaneQueueProducer(configure);
        return builder;
    }
}
