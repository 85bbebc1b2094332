using System.Text.Json;
using LaneQueue.Consumer;
using LaneQueue.Tests.Broker;

namespace LaneQueue.Tests.Integration;

/// <summary>The task history's retention is a setting (<c>LaneQueue:HistoryMaxAge</c> / <c>HistoryMaxBytes</c>); a fleet that differs is told which.</summary>
[Collection(BrokerCollection.Name)]
public sealed class HistoryRetentionTests(BrokerFixture broker)
{
    const long EightMiB = 8L * 1024 * 1024;

    [Fact]
    public async Task The_history_stream_takes_the_configured_retention_and_a_producer_or_consumer_that_differs_is_told_the_setting()
    {
        await using var vhost = await broker.CreateVhostAsync();
        var consumer = await ConsumerHost.StartAsync(vhost.Url, o =>
        {
            o.HistoryMaxAge = "2h";
            o.HistoryMaxBytes = EightMiB;
        });
        try
        {
            var arguments = (await vhost.QueueAsync(BrokerNames.History))!.Value.GetProperty("arguments");
            Assert.Equal("2h", arguments.GetProperty("x-max-age").GetString());
            Assert.Equal(EightMiB, arguments.GetProperty("x-max-length-bytes").GetInt64());

            // A producer left at the default (7D) is refused, naming the setting and both values.
            var refused = await Assert.ThrowsAsync<TaskRejectedException>(() => LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = vhost.Url }));
            Assert.Contains("LaneQueue:HistoryMaxAge", refused.Message, StringComparison.Ordinal);
            Assert.Contains("7D here, 2h on the broker", refused.Message, StringComparison.Ordinal);

            // Configured like the fleet, it connects and finds a finished task in the history.
            await using var producer = await LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = vhost.Url, HistoryMaxAge = "2h", HistoryMaxBytes = EightMiB });
            Assert.True((await producer.SubmitAndWaitAsync(ExternalTask.Create("kept-1", SessionLane.Query), TimeSpan.FromSeconds(30))).Success);
            await TestVhost.EventuallyAsync(async () => (await producer.GetTaskHistoryAsync("kept-1")).Final is not null, "kept-1 in the history");

            // A consumer with another size cap does not start.
            var failed = await Assert.ThrowsAsync<InvalidOperationException>(() => ConsumerHost.StartAsync(vhost.Url, o =>
            {
                o.HistoryMaxAge = "2h";
                o.HistoryMaxBytes = 2 * EightMiB;
            }));
            Assert.Contains("LaneQueue:HistoryMaxBytes", failed.Message, StringComparison.Ordinal);
        }
        finally
        {
            await consumer.StopQuietlyAsync();
        }
    }

    [Theory]
    [InlineData("7 days", 5368709120L, "LaneQueue:HistoryMaxAge")]
    [InlineData("0D", 5368709120L, "LaneQueue:HistoryMaxAge")]
    [InlineData("12h", 1000L, "LaneQueue:HistoryMaxBytes")]
    public void A_bad_retention_is_refused_naming_the_setting(string maxAge, long maxBytes, string setting)
    {
        var consumer = new LaneQueueOptionsValidator().Validate(null, new LaneQueueOptions { HistoryMaxAge = maxAge, HistoryMaxBytes = maxBytes });
        Assert.True(consumer.Failed);
        Assert.Contains(setting, consumer.FailureMessage, StringComparison.Ordinal);
        var producer = ProducerOptionsValidator.Problems(new ProducerOptions { HistoryMaxAge = maxAge, HistoryMaxBytes = maxBytes });
        Assert.Contains(producer, p => p.StartsWith(setting, StringComparison.Ordinal));
        Assert.Empty(ProducerOptionsValidator.Problems(new ProducerOptions { HistoryMaxAge = "30D", HistoryMaxBytes = maxBytes < 1_048_576 ? 1_048_576 : maxBytes }));
    }
}
