using LaneQueue.Dashboard;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace LaneQueue.Tests.Dashboard;

public sealed class DashboardOptionsTests
{
    [Theory]
    [InlineData("SampleInterval")]
    [InlineData("DepthSamples")]
    [InlineData("ActionsPolicy")]
    public void A_bad_dashboard_option_is_refused_naming_it(string option)
    {
        var services = new ServiceCollection().AddLaneQueueDashboard(o =>
        {
            switch (option)
            {
                case "SampleInterval": o.SampleInterval = TimeSpan.Zero; break;
                case "DepthSamples": o.DepthSamples = 1; break;
                default: o.ActionsPolicy = " "; break;
            }
        });
        using var provider = services.BuildServiceProvider();
        var error = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<LaneQueueDashboardOptions>>().Value);
        Assert.Contains($"LaneQueueDashboardOptions.{option}", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_defaults_are_valid_and_read_only()
    {
        using var provider = new ServiceCollection().AddLaneQueueDashboard().BuildServiceProvider();
        Assert.Null(provider.GetRequiredService<IOptions<LaneQueueDashboardOptions>>().Value.ActionsPolicy);
    }
}
