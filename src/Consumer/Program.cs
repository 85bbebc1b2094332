using LaneQueue.Consumer;
using Microsoft.Extensions.Hosting;

var builder = Host.CreateApplicationBuilder(args);
builder.AddLaneQueueConsumer();
await builder.Build().RunAsync();
