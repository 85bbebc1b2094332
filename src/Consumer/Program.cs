using LaneQueue.Consumer;
using Microsoft.AspNetCore.Builder;

// The content root is the program's folder, so appsettings.json is found whatever the working directory.
var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
builder.AddLaneQueueConsumer();
builder.AddLaneQueueTelemetry();
var app = builder.Build();
app.MapLaneQueueEndpoints();
await app.RunAsync();
