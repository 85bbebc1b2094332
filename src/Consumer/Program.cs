using LaneQueue.Consumer;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;

var builder = Host.CreateApplicationBuilder(args);
var consumer = builder.AddLaneQueueConsumer();
if (builder.Configuration.GetValue<bool>(CrashHandler.EnableKey))
    consumer.AddHandler<CrashHandler>(CrashHandler.CommandType);
await builder.Build().RunAsync();
