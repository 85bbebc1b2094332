using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using LaneQueue.Contracts;

namespace LaneQueue.Cli;

/// <summary><c>external pending</c>: the External-lane tasks that hold a slot and wait for a worker.</summary>
static class ExternalCli
{
    public static void AddTo(RootCommand root)
    {
        var lane = CliRun.LaneOption(required: false);
        var listen = new Option<double>("--listen") { Description = "Seconds to listen for consumer heartbeats", DefaultValueFactory = _ => 2.5 };
        var pending = new Command("pending", "External-lane tasks waiting for a worker, per lane: id, consumer, announced at, deadline") { lane, listen };
        pending.SetAction((parse, ct) => CliRun.WithProducerAsync(parse, ct, async (producer, output) =>
        {
            SessionLane? only = null;
            if (parse.GetValue(lane) is not null && (only = CliRun.Lane(parse, lane)) is null)
                return ProducerCli.InvalidInput;
            var tasks = (await producer.GetPendingExternalTasksAsync(TimeSpan.FromSeconds(parse.GetValue(listen)), ct))
                .Where(t => only is null || t.Lane == only).ToList();
            if (parse.GetValue(ProducerCli.Json))
            {
                await output.WriteLineAsync(JsonSerializer.Serialize(tasks, TaskJson.Options));
                return ProducerCli.Ok;
            }
            await output.WriteLineAsync($"{"LANE",-9}{"TASK",-28}{"ATTEMPT",8}  {"ANNOUNCED",-21}{"DEADLINE",-21}CONSUMER");
            foreach (var task in tasks)
                await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                    $"{task.Lane.WireName(),-9}{task.TaskId,-28}{task.Attempt,8}  {task.AnnouncedAt:u}  {task.Deadline:u}  {task.Consumer}"));
            await output.WriteLineAsync($"external pending: {tasks.Count}");
            return ProducerCli.Ok;
        }));
        root.Add(new Command("external", "External-lane work") { pending });
    }
}
