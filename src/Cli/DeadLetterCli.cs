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

        var redrive = new Command("redrive", "Send dead letters back to their lane: one (--id) or all (--all, the default)");
        var redriveLane = CliRun.LaneOption();
        var id = new Option<string?>("--id") { Description = "Only this task" };
        var all = new Option<bool>("--all") { Description = "Every dead letter of the lane (what redrive does without --id)" };
        redrive.Add(redriveLane);
        redrive.Add(id);
        redrive.Add(all);
        redrive.SetAction((parse, ct) => CliRun.WithProducerAsync(parse, ct, async (producer, output) =>
        {
            if (CliRun.Lane(parse, redriveLane) is not { } lane)
                return ProducerCli.InvalidInput;
            if (parse.GetValue(all) && parse.GetValue(id) is not null)
            {
                await parse.InvocationConfiguration.Error.WriteLineAsync("error: give --id or --all, not both");
                return ProducerCli.InvalidInput;
            }
            var queue = DeadLetters.QueueOf(lane);
            var json = parse.GetValue(ProducerCli.Json);
            int moved;
            if (parse.GetValue(id) is { } one)
                moved = await producer.DeadLetters.RedriveAsync(queue, one, cancellationToken: ct);
            else
            {
                var total = (int)await producer.DeadLetters.CountAsync(queue, ct);
                moved = await WithProgressAsync(output, json, $"redriving lane {lane.WireName()}", total, (report, token) =>
                    producer.DeadLetters.RedriveAsync(queue, null, new InlineProgress<int>(report), token), n => $"redriven {n}/{total}", ct);
            }
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
            var queue = DeadLetters.QueueOf(lane);
            var total = (int)await producer.DeadLetters.CountAsync(queue, ct);
            // One queue.purge: on a terminal a bar of what is being deleted, complete when the broker answers; a plain line elsewhere.
            var purged = 0;
            if (!parse.GetValue(ProducerCli.Json) && CliProgress.IsTerminal(output) && total > 0)
                await CliProgress.RunAsync($"purging lane {lane.WireName()}", total, async advance => advance(purged = (int)await producer.DeadLetters.PurgeAsync(queue, ct)));
            else
            {
                if (!parse.GetValue(ProducerCli.Json))
                    await output.WriteLineAsync($"purging {total} dead letter(s) of lane {lane.WireName()}...");
                purged = (int)await producer.DeadLetters.PurgeAsync(queue, ct);
            }
            await FleetCli.Report(parse, output, new { command = "purge", lane = lane.WireName(), purged }, $"purged {purged} dead letter(s) of lane {lane.WireName()}");
            return ProducerCli.Ok;
        }));

        root.Add(new Command("dead-letters", "A lane's dead-letter queue") { list, redrive, purge });
    }

    /// <summary>
    /// Runs long work that reports a running count (<paramref name="work"/> calls its callback with the count done so far): a
    /// Spectre.Console bar of <paramref name="total"/> on a terminal, a plain line every 100 elsewhere, nothing with --json.
    /// </summary>
    static async Task<int> WithProgressAsync(TextWriter output, bool json, string what, int total, Func<Action<int>, CancellationToken, Task<int>> work,
        Func<int, string> line, CancellationToken cancellationToken)
    {
        if (json)
            return await work(_ => { }, cancellationToken);
        if (CliProgress.IsTerminal(output) && total > 0)
        {
            var result = 0;
            await CliProgress.RunAsync(what, total, async advance =>
            {
                var reported = 0;
                result = await work(n =>
                {
                    advance(n - reported);
                    reported = n;
                }, cancellationToken);
            });
            return result;
        }
        return await work(n =>
        {
            if (n % 100 == 0)
                output.WriteLine(line(n));
        }, cancellationToken);
    }
}
