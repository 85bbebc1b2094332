using System.CommandLine;
using System.Text;
using LaneQueue.Cli;
using LaneQueue.Tests.Broker;
using RabbitMQ.Client;

namespace LaneQueue.Tests.Integration;

/// <summary>Long CLI work shows progress: a Spectre.Console bar on a terminal, plain lines when the output is not one.</summary>
[Collection(BrokerCollection.Name)]
public sealed class CliProgressTests(BrokerFixture broker)
{
    [Fact]
    public async Task Redrive_all_and_purge_report_progress_as_plain_lines_when_not_on_a_terminal()
    {
        await using var vhost = await broker.CreateVhostAsync();
        await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = vhost.Url }); // declares the lanes
        var deadLetters = DeadLetters.QueueOf(SessionLane.Query);
        await DeadLetterAsync(vhost.Url, deadLetters, "redrive", 150);

        var redrive = await CliAsync(vhost.Url, "dead-letters", "redrive", "--lane", "query", "--all");
        Assert.Equal(0, redrive.Code);
        Assert.Contains("redriven 100/150", redrive.Out, StringComparison.Ordinal);
        Assert.Contains("redriven 150 dead letter(s) to lane query", redrive.Out, StringComparison.Ordinal);
        Assert.DoesNotContain("\u001b[", redrive.Out, StringComparison.Ordinal); // no terminal control codes in plain output
        Assert.Equal(150u, await vhost.ReadyAsync(BrokerNames.LaneQueue(SessionLane.Query)));

        await DeadLetterAsync(vhost.Url, deadLetters, "purge", 30);
        var purge = await CliAsync(vhost.Url, "dead-letters", "purge", "--lane", "query");
        Assert.Equal(0, purge.Code);
        Assert.Contains("purging 30 dead letter(s) of lane query...", purge.Out, StringComparison.Ordinal);
        Assert.Contains("purged 30 dead letter(s) of lane query", purge.Out, StringComparison.Ordinal);

        var both = await CliAsync(vhost.Url, "dead-letters", "redrive", "--lane", "query", "--all", "--id", "x");
        Assert.Equal(2, both.Code);
        Assert.Contains("--id or --all", both.Err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task On_a_terminal_the_work_runs_under_a_progress_bar()
    {
        var terminal = new StringWriter();
        var steps = 0;
        await CliProgress.RunAsync("redriving lane query", 40, async advance =>
        {
            for (var i = 0; i < 4; i++)
            {
                await Task.Delay(10);
                steps += 10;
                advance(10);
            }
        }, terminal);
        Assert.Equal(40, steps);
        Assert.Contains("redriving lane query", terminal.ToString(), StringComparison.Ordinal);
        Assert.Contains("100%", terminal.ToString(), StringComparison.Ordinal);
        Assert.False(CliProgress.IsTerminal(terminal)); // a writer that is not the console's is never treated as a terminal
    }

    /// <summary>Puts <paramref name="count"/> valid tasks of lane query straight into its dead-letter queue.</summary>
    static async Task DeadLetterAsync(string url, string queue, string prefix, int count)
    {
        var factory = new ConnectionFactory { Uri = new Uri(url) };
        await using var connection = await factory.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync(new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true));
        await channel.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false);
        for (var i = 0; i < count; i++)
            await channel.BasicPublishAsync("", queue, mandatory: true, new BasicProperties { Persistent = true },
                Encoding.UTF8.GetBytes($"{{\"id\":\"{prefix}-{i}\",\"lane\":\"query\",\"payload\":{{}}}}"));
    }

    static async Task<(int Code, string Out, string Err)> CliAsync(string url, params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var code = await ProducerCli.RunAsync([.. args, "--url", url], new InvocationConfiguration { Output = output, Error = error });
        return (code, output.ToString(), error.ToString());
    }
}
