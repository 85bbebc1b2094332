using LaneQueue.Contracts;
using LaneQueue.Producer;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace LaneQueue.Tests.Unit;

/// <summary>AddLaneQueueProducer without a broker: binding from the LaneQueue section, validation naming the setting.</summary>
public sealed class ProducerRegistrationUnitTests
{
    [Fact]
    public void Options_bind_from_the_consumers_section_and_configure_wins()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["LaneQueue:RabbitMqUrl"] = "amqp://u:p@rabbit-1,rabbit-2/lq",
            ["LaneQueue:Topology"] = "PriorityQueue",
            ["LaneQueue:QuorumQueues"] = "true",
            ["LaneQueue:DeliveryLimit"] = "20",
            ["LaneQueue:RecoveryTimeout"] = "00:00:05",
            ["LaneQueue:SlotBudget"] = "8", // a consumer setting: ignored here
        }).Build();
        var services = new ServiceCollection().AddSingleton<IConfiguration>(configuration);
        services.AddLaneQueueProducer(o => o.ClientName = "orders");
        using var provider = services.BuildServiceProvider();

        var options = provider.GetRequiredService<IOptions<ProducerOptions>>().Value;
        Assert.Equal("amqp://u:p@rabbit-1,rabbit-2/lq", options.RabbitMqUrl);
        Assert.Equal(LaneTopology.PriorityQueue, options.Topology);
        Assert.True(options.QuorumQueues);
        Assert.Equal(20, options.DeliveryLimit);
        Assert.Equal(TimeSpan.FromSeconds(5), options.RecoveryTimeout);
        Assert.Equal("orders", options.ClientName);
        Assert.Same(provider.GetRequiredService<ILaneQueueProducer>(), provider.GetRequiredService<ILaneQueueProducer>());
        Assert.Contains(provider.GetServices<IHostedService>(), s => ReferenceEquals(s, provider.GetRequiredService<ILaneQueueProducer>()));
    }

    [Fact]
    public void Registering_twice_keeps_one_producer_and_one_hosted_service()
    {
        var services = new ServiceCollection();
        services.AddLaneQueueProducer();
        services.AddLaneQueueProducer();
        Assert.Single(services, d => d.ServiceType == typeof(ILaneQueueProducer));
        Assert.Single(services, d => d.ServiceType == typeof(IHostedService));
        Assert.Single(services, d => d.ServiceType == typeof(IValidateOptions<ProducerOptions>));
    }

    [Fact]
    public void Works_without_configuration_and_with_scripts_object_initializers()
    {
        var services = new ServiceCollection();
        services.AddLaneQueueProducer(o => o.RabbitMqUrl = "amqp://h/v");
        using var provider = services.BuildServiceProvider();
        Assert.Equal("amqp://h/v", provider.GetRequiredService<IOptions<ProducerOptions>>().Value.RabbitMqUrl);
        Assert.Equal(LaneTopology.QueuePerLane, new ProducerOptions { RabbitMqUrl = "amqp://h/v", QuorumQueues = true }.Topology);
    }

    [Fact]
    public async Task Invalid_settings_fail_the_host_start_naming_the_setting_without_the_password()
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["LaneQueue:RabbitMqUrl"] = "http://app:topsecret@rabbit/",
            ["LaneQueue:DeliveryLimit"] = "5",
        });
        builder.AddLaneQueueProducer();
        using var host = builder.Build();

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());
        Assert.Contains("LaneQueue:RabbitMqUrl must be an amqp:// or amqps:// URL", error.Message, StringComparison.Ordinal);
        Assert.Contains("LaneQueue:DeliveryLimit needs LaneQueue:QuorumQueues=true", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("topsecret", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Scripts_get_the_same_validation_from_ConnectAsync()
    {
        var error = await Assert.ThrowsAsync<ArgumentException>(() => LaneQueueProducer.ConnectAsync(new ProducerOptions { RabbitMqUrl = "amqp://h/v", MaxPayloadBytes = 0 }));
        Assert.Contains("LaneQueue:MaxPayloadBytes must be positive", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_validator_accepts_the_defaults_and_a_quorum_cluster()
    {
        var validator = new ProducerOptionsValidator();
        Assert.True(validator.Validate(null, new ProducerOptions { RabbitMqUrl = "amqp://guest:guest@localhost:5672/" }).Succeeded);
        Assert.True(validator.Validate(null, new ProducerOptions { RabbitMqUrl = "amqp://u:p@a:1,b:2/v", QuorumQueues = true, DeliveryLimit = 20 }).Succeeded);
        var bad = validator.Validate(null, new ProducerOptions { RabbitMqUrl = "amqp://h/v", RecoveryTimeout = TimeSpan.FromSeconds(-1), Topology = (LaneTopology)7 });
        Assert.Contains("LaneQueue:RecoveryTimeout must not be negative", bad.FailureMessage, StringComparison.Ordinal);
        Assert.Contains("LaneQueue:Topology must be QueuePerLane or PriorityQueue", bad.FailureMessage, StringComparison.Ordinal);
    }
}
