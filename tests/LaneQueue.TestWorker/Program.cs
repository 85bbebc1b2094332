using LaneQueue.Consumer;
using LaneQueue.TestWorker;
using Microsoft.AspNetCore.Builder;

// src/Worker's Program with the built-in handlers and the test-only crash handler, for the fault tests' child processes.
var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
builder.AddLaneQueueConsumer()
    .AddBuiltInHandlers()
    .AddHandler<CrashHandler>(CrashHandler.CommandType);
builder.AddLaneQueueTelemetry();
return await WorkerStart.RunAsync(() =>
{
    var app = builder.Build();
    app.MapLaneQueueEndpoints();
    return app;
});
