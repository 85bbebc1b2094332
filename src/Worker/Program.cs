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
var app = builder.Build();
app.MapLaneQueueEndpoints();
await app.RunAsync();
