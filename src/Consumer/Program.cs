using LaneQueue.Consumer;
using Microsoft.AspNetCore.Builder;

var builder = WebApplication.CreateBuilder(args);
builder.AddLaneQueueConsumer();
builder.AddLaneQueueTelemetry();
var app = builder.Build();
app.MapLaneQueueEndpoints();
await app.RunAsync();
