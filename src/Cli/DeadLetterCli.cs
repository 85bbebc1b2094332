using System.CommandLine;
using System.Text.Json;
using LaneQueue.Contracts;

using LaneQueue.Producer;

namespace LaneQueue.Cli;

/// <summary><c>dead-letters list|redrive|purge --lane L</c>.</summary>
static class DeadLetterCli
{
    public static void AddTo(RootCommand root)
    {
        var list = new Command("list", "Show a lane's dead letters with their reasons (nothing is removed)");
        var listLane = CliRun.LaneOption();
        var max = new Option<int>("--max") { Description = "Show at most this many", DefaultValueFactory = _ => 100 };
        list.Add(listLane);
        list.Add(max);
        list.SetAction((parse, ct) => CliRun.WithProducerAsync(parse, ct, async (producer, output) =>
        {
            if (CliRun.Lane(parse, listLane) is not { } lane)
                return ProducerCli.InvalidInput;
            var letters = await producer.DeadLetters.ListAsync(DeadLetters.QueueOf(lane), parse.GetValue(max), ct);
            if (parse.GetValue(ProducerCli.Json))
                await output.WriteLineAsync(JsonSerializer.Serialize(letters.Select(l => new
                {
                    task_id = l.TaskId, lane = l.Lane?.WireName(), reason = l.Reason, attempts = l.Attempts, last_error = l.LastError, at = l.At, body = l.Body,
                }), TaskJson.Options));
            else
            {
                await output.WriteLineAsync($"{letters.Count} dead letter(s) in {DeadLetters.QueueOf(lane)}");
                foreach (var l in letters)
                    await output.WriteLineAsync($"  {l.TaskId ?? "(no id)",-30} attempts {l.Attempts,-3} {l.At:u}  {l.Reason}");
            }
            return ProducerCli.Ok;
        }));

        var redrive = new Command("redrive", "Send dead letters back to their lane: one (--id) or all");
        var redriveLane = CliRun.LaneOption();
        var id = new Option<string?>("--id") { Description = "Only this task" };
        redrive.Add(redriveLane);
        redrive.Add(id);
        redrive.SetAction((parse, ct) => CliRun.WithProducerAsync(parse, ct, async (producer, output) =>
        {
            if (CliRun.Lane(parse, redriveLane) is not { } lane)
                return ProducerCli.InvalidInput;
            var json = parse.GetValue(ProducerCli.Json);
            var progress = new Progress<int>(n =>
            {
                if (!json && n % 100 == 0)
                    output.WriteLine($"redriven {n}...");
            });
            var moved = await producer.DeadLetters.RedriveAsync(DeadLetters.QueueOf(lane), parse.GetValue(id), progress, ct);
            await FleetCli.Report(parse, output, new { command = "redrive", lane = lane.WireName(), redriven = moved }, $"redriven {moved} dead letter(s) to lane {lane.WireName()}");
            return parse.GetValue(id) is not null && moved == 0 ? ProducerCli.InvalidInput : ProducerCli.Ok;
        }));

        var purge = new Command("purge", "Delete a lane's dead letters");
        var purgeLane = CliRun.LaneOption();
        purge.Add(purgeLane);
        purge.SetAction((parse, ct) => CliRun.WithProducerAsync(parse, ct, async (producer, output) =>
        {
            if (CliRun.Lane(parse, purgeLane) is not { } lane)
                return ProducerCli.InvalidInput;
            var purged = await producer.DeadLetters.PurgeAsync(DeadLetters.QueueOf(lane), ct);
            await FleetCli.Report(parse, output, new { command = "purge", lane = lane.WireName(), purged }, $"purged {purged} dead letter(s) of lane {lane.WireName()}");
            return ProducerCli.Ok;
        }));

        root.Add(new Command("dead-letters", "A lane's dead-letter queue") { list, redrive, purge });
    }
}
