using LaneQueue.Consumer;
using LaneQueue.Producer;

namespace LaneQueue.Tests.Unit;

public sealed class BrokerAddressTests
{
    [Fact]
    public void A_comma_separated_host_list_is_a_cluster()
    {
        var address = BrokerAddress.Parse("amqp://app:s%40cret@rabbit-1:5701,rabbit-2,[::1]:5703/lane%2Fqueue");
        Assert.Equal([("rabbit-1", 5701), ("rabbit-2", 5672), ("::1", 5703)], address.Hosts);
        Assert.True(address.IsCluster);
        Assert.Equal("app", address.UserName);
        Assert.Equal("s@cret", address.Password);
        Assert.Equal("lane/queue", address.VirtualHost);
        Assert.Equal(3, BrokerConnection.Endpoints("amqp://app:x@rabbit-1:5701,rabbit-2,[::1]:5703/v").Count);
    }

    [Theory]
    [InlineData("amqp://guest:guest@localhost:5672/", "/")]
    [InlineData("amqp://localhost", "/")]
    [InlineData("amqp://localhost/lanequeue", "lanequeue")]
    public void Vhost_defaults_to_slash(string url, string vhost) => Assert.Equal(vhost, BrokerAddress.Parse(url).VirtualHost);

    [Fact]
    public void Tls_options_come_from_the_query()
    {
        var address = BrokerAddress.Parse("amqps://u:p@broker/lq?cacertfile=/etc/ca.pem&certfile=/etc/c.pem&keyfile=/etc/c.key&server_name_indication=rabbit.internal");
        Assert.True(address.IsTls);
        Assert.Equal(5671, address.Hosts[0].Port);
        Assert.Equal("/etc/ca.pem", address.CaCertFile);
        Assert.Equal("/etc/c.key", address.KeyFile);
        Assert.Equal("rabbit.internal", address.ServerName);
        Assert.True(address.VerifyPeer);
    }

    [Theory]
    [InlineData("http://localhost/", "amqp:// or amqps://")]
    [InlineData("amqp://h:99999/", "bad host")]
    [InlineData("amqp://h/?bogus=1", "unknown option 'bogus'")]
    [InlineData("amqps://h/?certfile=/c.pem", "certfile and keyfile go together")]
    [InlineData("amqps://h/?verify=maybe", "verify must be")]
    public void Bad_urls_are_refused_with_the_reason(string url, string reason)
    {
        Assert.False(BrokerAddress.TryParse(url, out _, out var error));
        Assert.Contains(reason, error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("amqp://app:topsecret@h1:1,h2:2/v", "amqp://app:***@h1:1,h2:2/v")]
    [InlineData("amqps://app:topsecret@h/v?cacertfile=/ca.pem", "amqps://app:***@h/v?cacertfile=/ca.pem")]
    [InlineData("amqp://h/v", "amqp://h/v")]
    [InlineData("not a url at all: topsecret", "not a url at all: topsecret")]
    public void Redaction_hides_the_password_of_any_form(string url, string redacted) => Assert.Equal(redacted, BrokerConnection.Redact(url));

    [Fact]
    public void The_consumer_validates_the_url_and_the_delivery_limit_without_echoing_the_password()
    {
        var validator = new LaneQueueOptionsValidator();
        var result = validator.Validate(null, new LaneQueueOptions { RabbitMqUrl = "amqp://u:topsecret@h:bad/v", DeliveryLimit = 5 });
        Assert.True(result.Failed);
        Assert.DoesNotContain("topsecret", result.FailureMessage, StringComparison.Ordinal);
        Assert.Contains("DeliveryLimit needs LaneQueue:QuorumQueues=true", result.FailureMessage, StringComparison.Ordinal);
        Assert.True(validator.Validate(null, new LaneQueueOptions { RabbitMqUrl = "amqp://u:p@a:1,b:2/v", QuorumQueues = true, DeliveryLimit = 20 }).Succeeded);
    }
}
