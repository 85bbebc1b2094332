using LaneQueue.Tests.Broker;
using Microsoft.Extensions.Options;

namespace LaneQueue.Tests.Integration;

/// <summary>The broker-kept claims behind <c>dedup_key</c>: one winner per key and window across consumers, whatever the timing.</summary>
[Collection(BrokerCollection.Name)]
public class DedupClaimsTests(BrokerFixture broker)
{
    static BrokerPublisher Publisher(string url, string name) =>
        new(Options.Create(new LaneQueueOptions { RabbitMqUrl = url, ConsumerName = name }));

    [Fact]
    public async Task Racing_claims_from_two_consumers_have_one_winner_and_the_key_is_free_again_after_its_window()
    {
        await using var vhost = await broker.CreateVhostAsync();
        await using var one = Publisher(vhost.Url, "dedup-1");
        await using var two = Publisher(vhost.Url, "dedup-2");
        var claims = new[] { new DedupClaims(one), new DedupClaims(two) };

        // 100 tasks with one key, from two consumers at once.
        var answers = await Task.WhenAll(Enumerable.Range(0, 100).Select(i => claims[i % 2].ClaimAsync("order-42", 3000, $"t-{i}", CancellationToken.None)));
        var winners = Enumerable.Range(0, 100).Where(i => answers[i] is null).ToList();
        Assert.Single(winners);
        var winner = $"t-{winners[0]}";
        Assert.All(answers.Where(a => a is not null), a => Assert.True(a == winner || a == "", $"answered '{a}', the winner is {winner}"));
        Assert.True(answers.Count(a => a == winner) >= 90, "the losers are told who won");

        // The winner delivered again (its consumer died) still holds it; another key is independent.
        Assert.Null(await claims[1].ClaimAsync("order-42", 3000, winner, CancellationToken.None));
        Assert.Null(await claims[0].ClaimAsync("order-43", 3000, "t-other", CancellationToken.None));
        // The same key with another window is another claim.
        Assert.Null(await claims[0].ClaimAsync("order-42", 60_000, "t-long", CancellationToken.None));

        // After the window the key runs again.
        await TestVhost.EventuallyAsync(async () => await claims[0].ClaimAsync("order-42", 3000, "t-later", CancellationToken.None) is null,
            "the key is free after its 3 s window", 30);
    }
}
