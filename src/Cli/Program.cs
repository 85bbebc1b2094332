using LaneQueue.Cli;

return await ProducerCli.RunAsync(args);
