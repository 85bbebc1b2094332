using LaneQueue.Consumer;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;

// The content root is the program's folder, so appsettings.json is found whatever the working directory.
var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
var consumer = builder.AddLaneQueueConsumer();
if (builder.Configuration.GetValue<bool>(CrashHandler.EnableKey))
    consumer.AddHandler<CrashHandler>(CrashHandler.CommandType);
builder.AddLaneQueueTelemetry();
var app = builder.Build();
app.MapLaneQueueEndpoints();
await app.RunAsync();
