using LaneQueue.Consumer;
using LaneQueue.Producer;
using LaneQueue.Sample;
using MassTransit;

// appsettings.json is read from the program's folder whatever the working directory; any setting can be overridden on
// the command line, e.g. --LaneQueue:RabbitMqUrl=amqp://guest:guest@localhost:5672/my-vhost
var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = args, ContentRootPath = AppContext.BaseDirectory });
// Logs go to stderr; stdout carries only the example's machine-readable lines.
builder.Logging.AddConsole(console => console.LogToStandardErrorThreshold = LogLevel.Trace);

// The application's own MassTransit bus and consumer, on the same broker as LaneQueue's bus.
builder.Services.AddMassTransit(x =>
{
    x.AddConsumer<GreetingConsumer>();
    x.UsingRabbitMq((context, cfg) =>
    {
        cfg.Host(new Uri(builder.Configuration["LaneQueue:RabbitMqUrl"]!));
        cfg.ConfigureEndpoints(context);
    });
});
// Start-up returns once the receive endpoints are bound, so nothing published right after is lost.
builder.Services.AddOptions<MassTransitHostOptions>().Configure(host => host.WaitUntilStarted = true);

// LaneQueue consumer (section "LaneQueue"): runs our typed handler for command type "analysis"; tasks without a command
// type run the built-in echo handler. LaneQueue runs a MassTransit bus of its own (MultiBus), next to the one above.
builder.AddLaneQueueConsumer()
    .AddHandler<AnalysisHandler>("analysis");

// LaneQueue producer (same section, LaneQueue:RabbitMqUrl): ILaneQueueProducer, to inject where tasks are submitted.
builder.Services.AddLaneQueueProducer();

builder.Services.AddSingleton<Greetings>();
builder.Services.AddHostedService<PriorityExample>();

// The example sets the exit code (0: urgent-query ran first and the greeting was consumed) and stops the host.
await builder.Build().RunAsync();
