using LaneQueue.Contracts;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace LaneQueue.Consumer;

/// <summary>The host wiring of a LaneQueue consumer: options, handlers, MassTransit endpoints, lane gate.</summary>
public static class ConsumerRegistration
{
    /// <summary>Adds a LaneQueue consumer to the host; configuration comes from the <c>LaneQueue</c> section.</summary>
    public static LaneQueueConsumerBuilder AddLaneQueueConsumer(this IHostApplicationBuilder builder, Action<LaneQueueOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var services = builder.Services;
        var options = services.AddOptions<LaneQueueOptions>().BindConfiguration(LaneQueueOptions.Section).ValidateOnStart();
        if (configure is not null)
            options.Configure(configure);
        services.AddSingleton<IValidateOptions<LaneQueueOptions>, LaneQueueOptionsValidator>();

        var handlers = new TaskHandlers();
        handlers.Add<EchoHandler>(EchoHandler.CommandType);
        services.AddSingleton(handlers);
        services.AddSingleton<SlotBudget>();
        services.AddSingleton<TaskRateLimits>();
        services.AddSingleton<LaneActivity>();
        services.AddSingleton<LaneEndpoints>();
        services.AddMetrics();
        services.AddSingleton<ConsumerMetrics>();
        services.AddSingleton<RunningTasks>();
        services.AddSingleton<TaskLedger>();
        services.AddSingleton<LaneModes>();
        services.AddSingleton<BrokerPublisher>();
        services.AddSingleton<FleetListener>();
        services.AddSingleton<ExternalTasks>();
        services.AddHostedService<BrokerSetup>();
        services.AddHostedService(sp => sp.GetRequiredService<FleetListener>());
        services.AddHostedService(sp => sp.GetRequiredService<ExternalTasks>());
        services.AddHostedService<Preemption>();
        services.AddSingleton<FleetHeartbeat>();
        services.AddHostedService(sp => sp.GetRequiredService<FleetHeartbeat>());
        services.AddSingleton<LaneGate>();
        services.AddHostedService(sp => sp.GetRequiredService<LaneGate>());

        services.AddOptions<HostOptions>().Configure<IOptions<LaneQueueOptions>>((host, lane) =>
            host.ShutdownTimeout = TimeSpan.FromSeconds(lane.Value.ShutdownTimeoutSeconds + 5));
        services.AddOptions<MassTransitHostOptions>().Configure<IOptions<LaneQueueOptions>>((host, lane) =>
        {
            host.WaitUntilStarted = true;
            host.StopTimeout = TimeSpan.FromSeconds(lane.Value.ShutdownTimeoutSeconds);
        });

        services.AddMassTransit(x =>
        {
            x.AddConsumer<LaneTaskConsumer>();
            x.UsingRabbitMq((context, cfg) =>
            {
                var settings = context.GetRequiredService<IOptions<LaneQueueOptions>>().Value;
                ConfigureHost(cfg, settings.RabbitMqUrl, settings.ConsumerName);
                // Results and events leave as plain JSON any language can read; tasks arrive as plain JSON
                // (any or no content type) or in MassTransit's envelope.
                cfg.UseRawJsonSerializer(RawSerializerOptions.AnyMessageType | RawSerializerOptions.AddTransportHeaders, isDefault: true);
                cfg.UseJsonDeserializer();

                var endpoints = context.GetRequiredService<LaneEndpoints>();
                foreach (var (queue, lane) in LaneQueues(settings))
                {
                    cfg.ReceiveEndpoint(queue, e =>
                    {
                        e.ConfigureConsumeTopology = false;
                        var limit = lane is { } l ? settings.Queue.MaxConcurrency(l) : settings.SlotBudget;
                        e.PrefetchCount = limit;
                        e.ConcurrentMessageLimit = limit;
                        if (settings.QuorumQueues)
                        {
                            e.SetQuorumQueue();
                            PoisonMessages.Configure(e, queue, settings);
                        }
                        if (settings.Topology == LaneTopology.PriorityQueue)
                            e.SetQueueArgument("x-max-priority", SessionLanes.All.Count);
                        foreach (var bound in lane is { } one ? [one] : SessionLanes.All)
                        {
                            e.Bind(BrokerNames.TasksExchange, b =>
                            {
                                b.ExchangeType = "direct";
                                b.RoutingKey = BrokerNames.RoutingKey(bound);
                            });
                        }
                        e.UseContractDeadLetters(settings.MaxPayloadBytes);
                        e.ConnectReceiveEndpointObserver(endpoints);
                        e.ConfigureConsumer<LaneTaskConsumer>(context);
                    });
                }
            });
        });
        // MassTransit's hosted service, with a stop that ends (BoundedBusStop), in its place among the hosted services.
        var busService = services.Single(d => d.ServiceType == typeof(IHostedService) && d.ImplementationType == typeof(MassTransitHostedService));
        services[services.IndexOf(busService)] = ServiceDescriptor.Singleton<IHostedService>(sp =>
            ActivatorUtilities.CreateInstance<BoundedBusStop>(sp, sp.GetRequiredService<MassTransitHostedService>()));
        services.AddSingleton<MassTransitHostedService>();
        // After the bus on purpose: hosted services stop in reverse order, so lane switches end before the bus stops.
        services.AddHostedService(sp => sp.GetRequiredService<LaneEndpoints>());
        return new LaneQueueConsumerBuilder(services, handlers);
    }

    /// <summary>The receive queues of the configured topology, with their lane (null = all lanes).</summary>
    static IEnumerable<(string Queue, SessionLane? Lane)> LaneQueues(LaneQueueOptions settings) =>
        settings.Topology == LaneTopology.PriorityQueue
            ? [(BrokerNames.PriorityQueue, null)]
            : SessionLanes.All.Select(lane => (BrokerNames.LaneQueue(lane), (SessionLane?)lane));

    static void ConfigureHost(IRabbitMqBusFactoryConfigurator cfg, string url, string consumerName) => BrokerHost.Configure(cfg, url, consumerName);
}

/// <summary>Returned by <see cref="ConsumerRegistration.AddLaneQueueConsumer"/> to register task handlers.</summary>
public sealed class LaneQueueConsumerBuilder
{
    readonly TaskHandlers handlers;

    internal LaneQueueConsumerBuilder(IServiceCollection services, TaskHandlers handlers)
    {
        Services = services;
        this.handlers = handlers;
    }

    public IServiceCollection Services { get; }

    public LaneQueueConsumerBuilder AddHandler<THandler>(string commandType) where THandler : class, ITaskHandler
    {
        handlers.Add<THandler>(commandType);
        return this;
    }

    public LaneQueueConsumerBuilder AddHandler(string commandType, Func<TaskContext, Task<object?>> handle)
    {
        handlers.Add(commandType, _ => new DelegateHandler(handle));
        return this;
    }

    /// <summary>
    /// The built-in stand-ins for real work: <c>sleep</c> (waits <c>payload.ms</c>, honouring cancellation) and <c>fail</c>
    /// (always throws <c>payload.message</c>). For demos, benchmarks and tests; <c>echo</c> is always there.
    /// </summary>
    public LaneQueueConsumerBuilder AddBuiltInHandlers()
    {
        handlers.Add<SleepHandler>(SleepHandler.CommandType);
        handlers.Add<FailHandler>(FailHandler.CommandType);
        return this;
    }

    /// <summary>The handler for tasks that carry no command type (default: echo).</summary>
    public LaneQueueConsumerBuilder DefaultHandler(string commandType)
    {
        handlers.DefaultCommandType = commandType;
        return this;
    }
}
