using LaneQueue.Contracts;
using LaneQueue.Producer;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace LaneQueue.Consumer;

/// <summary>The host wiring of a LaneQueue consumer: options, handlers, its own MassTransit bus, lane gate, fleet.</summary>
public static class ConsumerRegistration
{
    /// <summary>Adds a LaneQueue consumer to the host; configuration comes from the <c>LaneQueue</c> section.</summary>
    public static LaneQueueConsumerBuilder AddLaneQueueConsumer(this IHostApplicationBuilder builder, Action<LaneQueueOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.Services.AddLaneQueueConsumer(configure);
    }

    /// <summary>
    /// Adds a LaneQueue consumer; options are bound from the <c>LaneQueue</c> configuration section and validated at start.
    /// LaneQueue runs its own MassTransit bus (<see cref="ILaneQueueBus"/>, MassTransit's MultiBus), so a host that already
    /// has a bus of its own (<c>AddMassTransit</c>) keeps it, with its consumers, side by side on the same broker.
    /// </summary>
    public static LaneQueueConsumerBuilder AddLaneQueueConsumer(this IServiceCollection services, Action<LaneQueueOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        if (services.Any(d => d.ServiceType == typeof(TaskHandlers)))
            throw new InvalidOperationException("AddLaneQueueConsumer was called twice: one LaneQueue consumer per host (it has a slot budget for the whole process)");
        var options = services.AddOptions<LaneQueueOptions>().BindConfiguration(LaneQueueOptions.Section).ValidateOnStart();
        if (configure is not null)
            options.Configure(configure);
        services.AddSingleton<IValidateOptions<LaneQueueOptions>, LaneQueueOptionsValidator>();

        var handlers = new TaskHandlers();
        handlers.Add<EchoHandler>(EchoHandler.CommandType);
        handlers.Add<InterruptSessionHandler>(InterruptSessionHandler.CommandType);
        services.AddSingleton(handlers);
        services.AddSingleton<LaneSlots>();
        services.AddSingleton<TaskRateLimits>();
        services.AddSingleton<FleetLimits>();
        services.AddSingleton<LaneActivity>();
        services.AddSingleton<LaneEndpoints>();
        services.AddMetrics();
        services.AddSingleton<ConsumerMetrics>();
        services.AddSingleton<RunningTasks>();
        services.AddSingleton<CrashSuspects>();
        services.AddSingleton<TaskAdmission>();
        services.AddSingleton<TaskExecution>();
        services.AddSingleton<TaskOutcome>();
        services.AddSingleton<TaskLedger>();
        services.AddSingleton<DeadLetterAnswers>();
        services.AddSingleton<RedeliveryCheck>();
        services.AddSingleton<DedupClaims>();
        services.AddSingleton<LaneModes>();
        services.AddSingleton<BrokerPublisher>();
        services.AddSingleton<IFleetCommands>(sp => sp.GetRequiredService<BrokerPublisher>());
        services.AddSingleton<FleetListener>();
        services.AddSingleton<ExternalTasks>();
        services.AddHostedService<BrokerSetup>();
        services.AddHostedService<FleetLimitsSetup>();
        services.AddHostedService(sp => sp.GetRequiredService<FleetListener>());
        services.AddHostedService(sp => sp.GetRequiredService<ExternalTasks>());
        services.AddSingleton<FleetHeartbeat>();
        services.AddHostedService(sp => sp.GetRequiredService<FleetHeartbeat>());
        services.AddSingleton<LaneGate>();
        services.AddHostedService(sp => sp.GetRequiredService<LaneGate>());
        services.AddSingleton<FleetMonitor>();
        services.AddHostedService(sp => sp.GetRequiredService<FleetMonitor>());
        services.AddSingleton<ScheduleTable>();
        services.AddSingleton(sp => new ScheduleFirer(sp.GetRequiredService<IOptions<LaneQueueOptions>>(), sp.GetRequiredService<ScheduleTable>(),
            sp.GetRequiredService<FleetMonitor>(), sp.GetRequiredService<BrokerPublisher>(), sp.GetRequiredService<Microsoft.Extensions.Logging.ILogger<ScheduleFirer>>(), sp.GetService<TimeProvider>()));
        services.AddHostedService(sp => sp.GetRequiredService<ScheduleFirer>());
        services.AddSingleton<BrokerDeadLetterAnswers>();
        services.AddHostedService(sp => sp.GetRequiredService<BrokerDeadLetterAnswers>());

        services.AddOptions<HostOptions>().Configure<IOptions<LaneQueueOptions>>((host, lane) =>
            host.ShutdownTimeout = TimeSpan.FromSeconds(lane.Value.ShutdownTimeoutSeconds + 5));
        services.AddOptions<MassTransitHostOptions>().Configure<IOptions<LaneQueueOptions>>((host, lane) =>
        {
            host.WaitUntilStarted = true;
            host.StopTimeout = TimeSpan.FromSeconds(lane.Value.ShutdownTimeoutSeconds);
        });

        services.AddMassTransit<ILaneQueueBus>(x =>
        {
            x.AddConsumer<LaneTaskConsumer>();
            x.UsingRabbitMq((context, cfg) =>
            {
                var settings = context.GetRequiredService<IOptions<LaneQueueOptions>>().Value;
                BrokerHost.Configure(cfg, settings.RabbitMqUrl, settings.ConsumerName);
                // Tasks arrive as plain JSON (any or no content type) or in MassTransit's envelope. Nothing is published
                // through this bus: results, events and re-published tasks go through BrokerPublisher.
                cfg.UseRawJsonDeserializer(RawSerializerOptions.AnyMessageType | RawSerializerOptions.AddTransportHeaders, isDefault: true);
                cfg.UseJsonDeserializer();
                // A session shard's dead letters go to its lane's _error queue (BrokerNames.DeadLetterQueue): one per lane.
                cfg.SendTopology.ErrorQueueNameFormatter = new LaneErrorQueueNames();
                // MassTransit copies a lane queue's arguments to its _error queue: keep it quorum, without the lane's delivery
                // limit and dead-lettering (LaneQueueTopology declares it so up front, and a looked-at letter is never dropped),
                // and without a session shard's single active consumer (the lane's _error is one queue for all its shards).
                cfg.SendTopology.ConfigureErrorSettings = error =>
                {
                    error.SetQueueArgument(LaneQueueTopology.SingleActiveConsumerArgument, null);
                    if (settings.QuorumQueues)
                    {
                        error.SetQueueArgument(LaneQueueTopology.DeliveryLimitArgument, null);
                        error.SetQueueArgument(LaneQueueTopology.DeadLetterExchangeArgument, null);
                    }
                };

                var endpoints = context.GetRequiredService<LaneEndpoints>();
                var answers = context.GetRequiredService<DeadLetterAnswers>();
                var slots = context.GetRequiredService<LaneSlots>();
                foreach (var (queue, lane, routingKeys, singleActive) in LaneQueues(settings))
                {
                    cfg.ReceiveEndpoint(queue, e =>
                    {
                        e.ConfigureConsumeTopology = false;
                        var prefetch = lane is { } l ? LanePrefetch(settings.Queue.MaxConcurrency(l), settings.PrefetchPerLimit) : settings.SlotBudget;
                        e.PrefetchCount = prefetch;
                        e.ConcurrentMessageLimit = prefetch;
                        if (settings.QuorumQueues)
                        {
                            e.SetQuorumQueue();
                            PoisonMessages.Configure(e, queue, settings);
                        }
                        if (settings.Topology == LaneTopology.PriorityQueue)
                            e.SetQueueArgument("x-max-priority", SessionLanes.All.Count);
                        if (singleActive)
                            e.SetQueueArgument(LaneQueueTopology.SingleActiveConsumerArgument, true);
                        foreach (var key in routingKeys)
                        {
                            e.Bind(BrokerNames.TasksExchange, b =>
                            {
                                b.ExchangeType = "direct";
                                b.RoutingKey = key;
                            });
                        }
                        if (lane is { } arrivingLane)
                            e.ConfigureReceive(r => r.UseFilter(new ArrivalFilter(arrivingLane, slots)));
                        e.UseContractDeadLetters(settings.MaxPayloadBytes, answers);
                        e.ConnectReceiveEndpointObserver(endpoints);
                        e.ConfigureConsumer<LaneTaskConsumer>(context);
                    });
                }
            });
        });
        // MassTransit's hosted service (one for every bus of the host, ours and any of its own), with a stop that ends
        // (BoundedBusStop), in its place among the hosted services.
        var busServices = services.Where(d => d.ServiceType == typeof(IHostedService) && d.ImplementationType == typeof(MassTransitHostedService)).ToList();
        if (busServices.Count > 0)
        {
            services[services.IndexOf(busServices[0])] = ServiceDescriptor.Singleton<IHostedService>(sp =>
                ActivatorUtilities.CreateInstance<BoundedBusStop>(sp, sp.GetRequiredService<MassTransitHostedService>()));
            foreach (var extra in busServices.Skip(1))
                services.Remove(extra);
            services.AddSingleton<MassTransitHostedService>();
        }
        // After the bus on purpose: hosted services stop in reverse order, so lane switches end before the bus stops.
        services.AddHostedService(sp => sp.GetRequiredService<LaneEndpoints>());
        return new LaneQueueConsumerBuilder(services, handlers);
    }

    /// <summary>
    /// Deliveries a lane's endpoint holds: <see cref="LaneQueueOptions.PrefetchPerLimit"/> (4) times the lane's limit, and at
    /// least 2 more than the limit. The scheduler (<see cref="LaneSlots"/>) enforces the limit; the rest are the next tasks,
    /// here before a slot frees, so a lane never waits for the broker between two of its tasks, and tasks whose handler has
    /// returned (their slot is free) while their result is confirmed and their ack travels, which under load takes longer
    /// than a short task runs: at 2 they can fill the window and hold a lane of short tasks back, at 4 they do not
    /// (bench/README.md, throughput).
    /// </summary>
    internal static int LanePrefetch(int laneLimit, int perLimit) => Math.Max(laneLimit * perLimit, laneLimit + 2);

    /// <summary>The receive queues of the configured topology (session shards included), with their lane (null = all lanes) and routing keys.</summary>
    static IEnumerable<(string Queue, SessionLane? Lane, IReadOnlyList<string> RoutingKeys, bool SingleActive)> LaneQueues(LaneQueueOptions settings) =>
        settings.LaneQueues.Queues
            .Select(q => (q.Name, q.Lanes.Count == 1 ? (SessionLane?)q.Lanes[0] : null, q.RoutingKeys, q.Arguments.ContainsKey(LaneQueueTopology.SingleActiveConsumerArgument)));

    /// <summary>MassTransit's <c>_error</c> queue names, with a session shard's going to its lane's.</summary>
    sealed class LaneErrorQueueNames : IErrorQueueNameFormatter
    {
        public string FormatErrorQueueName(string queueName) => BrokerNames.DeadLetterQueue(queueName);
    }

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

    /// <summary>
    /// Runs <typeparamref name="THandler"/> (an <see cref="ITaskHandler"/> or an <see cref="ITaskHandler{TPayload}"/>) for
    /// tasks whose <c>command_type</c> is <paramref name="commandType"/>. It is created for each task with its dependencies
    /// from the container.
    /// </summary>
    public LaneQueueConsumerBuilder AddHandler<THandler>(string commandType) where THandler : class
    {
        handlers.Add<THandler>(commandType);
        return this;
    }

    /// <summary>Runs a delegate for tasks whose <c>command_type</c> is <paramref name="commandType"/>.</summary>
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
