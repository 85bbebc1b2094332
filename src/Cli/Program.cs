using LaneQueue.Cli;

return await ProducerCli.Build().Parse(args).InvokeAsync();
