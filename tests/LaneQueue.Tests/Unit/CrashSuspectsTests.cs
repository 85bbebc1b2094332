using LaneQueue.Consumer;
using LaneQueue.Contracts;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;

namespace LaneQueue.Tests.Unit;

public sealed class CrashSuspectsTests
{
    static CrashSuspects Suspects(int? limit, bool isolate = true) =>
        new(Options.Create(new LaneQueueOptions { QuorumQueues = limit is not null, DeliveryLimit = limit, IsolateCrashSuspects = isolate }));

    static BasicProperties With(params (string Name, object? Value)[] headers) =>
        new() { Headers = headers.ToDictionary(h => h.Name, h => h.Value) };

    [Fact]
    public void Crashes_add_the_brokers_delivery_count_of_this_copy_to_those_a_held_copy_carried_in()
    {
        Assert.Equal(0, CrashSuspects.CrashesOf(null));
        Assert.Equal(0, CrashSuspects.CrashesOf(new BasicProperties()));
        Assert.Equal(2, CrashSuspects.CrashesOf(With((BrokerNames.DeliveryCountHeader, 2L))));
        Assert.Equal(3, CrashSuspects.CrashesOf(With((BrokerNames.CrashesHeader, 3))));
        Assert.Equal(5, CrashSuspects.CrashesOf(With((BrokerNames.DeliveryCountHeader, 1L), (BrokerNames.CrashesHeader, 4L))));
        // Another client may write the header as text; anything unreadable counts as none.
        Assert.Equal(2, CrashSuspects.CrashesOf(With((BrokerNames.CrashesHeader, "2"u8.ToArray()))));
        Assert.Equal(0, CrashSuspects.CrashesOf(With((BrokerNames.CrashesHeader, "many"))));
    }

    [Fact]
    public void One_suspect_holds_the_place_until_it_ends()
    {
        var suspects = Suspects(3);
        var first = suspects.TryEnter();
        Assert.NotNull(first);
        Assert.Null(suspects.TryEnter());
        first.Dispose();
        first.Dispose(); // twice does not free a place another took meanwhile
        using var second = suspects.TryEnter();
        Assert.NotNull(second);
        first.Dispose();
        Assert.Null(suspects.TryEnter());
    }

    [Fact]
    public void Isolation_needs_a_delivery_limit_and_can_be_switched_off()
    {
        Assert.True(Suspects(3).Enabled);
        Assert.False(Suspects(null).Enabled);
        Assert.False(Suspects(3, isolate: false).Enabled);
    }

    [Fact]
    public async Task A_suspect_waits_until_the_suspects_delivered_with_it_are_on_their_way_to_the_hold()
    {
        var suspects = Suspects(3);
        var holding = suspects.Holding();
        var settle = suspects.SettleAsync(CancellationToken.None);
        await Task.Delay(300);
        Assert.False(settle.IsCompleted);
        holding.Dispose();
        await settle.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public void LaneQueue_and_the_broker_say_a_delivery_limit_in_the_same_words()
    {
        var broker = BrokerDeadLetterAnswers.Explain(new Dictionary<string, object?>
        {
            ["x-death"] = new List<object>
            {
                new Dictionary<string, object?> { ["reason"] = "delivery_limit"u8.ToArray(), ["queue"] = "lanequeue.execute"u8.ToArray(), ["count"] = 1L },
            },
        }, deliveryLimit: 3);
        Assert.NotNull(broker);
        Assert.Equal(CrashSuspects.DeliveryLimitError(4), broker.Value.Error);
        Assert.Equal("delivery_limit: delivered 4 times without an answer; the task may crash its consumer", CrashSuspects.DeliveryLimitError(4));
    }
}
