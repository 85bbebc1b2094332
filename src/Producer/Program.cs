using LaneQueue.Producer;

return await ProducerCli.Build().Parse(args).InvokeAsync();
