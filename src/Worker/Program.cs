using LaneQueue.Consumer;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;

// The content root is the program's folder, so appsettings.json is found whatever the working directory.
var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
var consumer = builder.AddLaneQueueConsumer();
// sleep / fail (stand-ins for real work) only when asked for: the demo and the benchmark turn them on.
if (builder.Configuration.GetValue<bool>("Worker:BuiltInHandlers"))
    consumer.AddBuiltInHandlers();
builder.AddLaneQueueTelemetry();
// A setting refused at start ends the process with its name and exit code 2 (WorkerStart).
return await WorkerStart.RunAsync(() =>
{
    var app = builder.Build();
    app.MapLaneQueueEndpoints();
    return app;
});
