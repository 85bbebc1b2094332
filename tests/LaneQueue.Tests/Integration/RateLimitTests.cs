using LaneQueue.Consumer;
using LaneQueue.Contracts;
using LaneQueue.Producer;
using LaneQueue.Tests.Broker;
using Xunit.Abstractions;

namespace LaneQueue.Tests.Integration;

/// <summary>
/// Rate limits end to end: a consumer with a limit, more tasks waiting than the limit lets start, and the starts per
/// second read from the results' <c>started_at</c>. Without the limiter on the task path every task here would start
/// within a fraction of a second.
/// </summary>
[Collection(BrokerCollection.Name)]
public sealed class RateLimitTests(BrokerFixture broker, ITestOutputHelper output) : IAsyncLifetime
{
    static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);
    TestFleet _fleet = null!;

    public async Task InitializeAsync() => _fleet = new TestFleet(await broker.CreateVhostAsync());

    public async Task DisposeAsync() => await _fleet.DisposeAsync();

    async Task<List<ExternalTaskResult>> RunAllAsync(IEnumerable<ExternalTask> tasks)
    {
        var results = await Task.WhenAll(tasks.Select(t => _fleet.Producer.SubmitAndWaitAsync(t, Wait)));
        Assert.All(results, r => Assert.True(r.Success, r.Error));
        return [.. results.OrderBy(r => r.StartedAt)];
    }

    /// <summary>
    /// A token bucket of N per second (full when idle, refilled with N every second) starts at most 2N tasks in any window
    /// shorter than a second (a full bucket, then one refill that may come at once): the (k+2N)-th start comes at least a
    /// period after the k-th. 0.8 s rather than 1 s leaves room for a start that was itself late (a loaded machine).
    /// </summary>
    static void AssertAtMostPerSecond(IReadOnlyList<DateTimeOffset> starts, int perSecond, string what)
    {
        for (var k = 0; k + 2 * perSecond < starts.Count; k++)
        {
            var gap = starts[k + 2 * perSecond] - starts[k];
            Assert.True(gap >= TimeSpan.FromMilliseconds(800),
                $"{what}: starts {k + 1} and {k + 2 * perSecond + 1} were {gap.TotalMilliseconds:0} ms apart; a limit of {perSecond}/s allows at most {2 * perSecond} within a second. " +
                $"Starts (ms from the first): {string.Join(", ", starts.Select(s => (s - starts[0]).TotalMilliseconds.ToString("0", System.Globalization.CultureInfo.InvariantCulture)))}");
        }
    }

    static string Offsets(IReadOnlyList<DateTimeOffset> starts) =>
        string.Join(", ", starts.Select(s => (s - starts[0]).TotalMilliseconds.ToString("0", System.Globalization.CultureInfo.InvariantCulture)));

    [Fact]
    public async Task A_lane_limited_to_N_per_second_starts_N_per_second_while_an_unlimited_lane_runs_freely()
    {
        const int perSecond = 4, limited = 16, free = 8;
        await _fleet.StartConsumerAsync("rate-lane", o => o.LaneRateLimits[SessionLane.Query] = new RateLimit { LimitType = RateLimitType.PerSecond, MaxOperations = perSecond });

        var queries = RunAllAsync(Enumerable.Range(1, limited).Select(i => ExternalTask.Create($"rq-{i}", SessionLane.Query, new { i })));
        var controls = RunAllAsync(Enumerable.Range(1, free).Select(i => ExternalTask.Create($"rc-{i}", SessionLane.Control, new { i })));
        var query = (await queries).Select(r => r.StartedAt).ToList();
        var control = (await controls).Select(r => r.StartedAt).ToList();
        output.WriteLine($"query starts (ms): {Offsets(query)}");
        output.WriteLine($"control starts (ms): {Offsets(control)}");

        // 16 tasks at 4/s: a full bucket of 4 at once, the first refill within a second, then 4 a second: the last starts at
        // least 2 s after the first.
        var span = query[^1] - query[0];
        Assert.True(span >= TimeSpan.FromMilliseconds((limited / perSecond - 2) * 1000 - 200),
            $"{limited} query tasks at {perSecond}/s started within {span.TotalMilliseconds:0} ms: {Offsets(query)}");
        AssertAtMostPerSecond(query, perSecond, "query lane");
        // The limit is the query lane's own: the control lane does not wait for its tokens.
        Assert.True(control[^1] < query[2 * perSecond],
            $"the unlimited control lane must not be paced: control {Offsets(control)}; query {Offsets(query)}");
        Evidence.Write("rate-limit-lane", new
        {
            Limit = $"LaneRateLimits:Query PerSecond {perSecond}",
            QueryTasks = limited,
            QueryStartsMs = query.Select(s => Math.Round((s - query[0]).TotalMilliseconds)).ToArray(),
            ControlTasks = free,
            ControlStartsMs = control.Select(s => Math.Round((s - control[0]).TotalMilliseconds)).ToArray(),
        });
    }

    [Fact]
    public async Task The_process_limit_is_shared_by_every_lane()
    {
        const int perSecond = 5, each = 6;
        await _fleet.StartConsumerAsync("rate-process", o => o.Queue = o.Queue with { RateLimit = new RateLimit { LimitType = RateLimitType.PerSecond, MaxOperations = perSecond } });

        var all = await RunAllAsync(SessionLanes.All.SelectMany(lane => Enumerable.Range(1, each)
            .Select(i => ExternalTask.Create($"rp-{lane.WireName()}-{i}", lane, new { i }))));
        var starts = all.Select(r => r.StartedAt).ToList();
        output.WriteLine($"starts (ms): {Offsets(starts)}");

        var span = starts[^1] - starts[0];
        var total = each * SessionLanes.All.Count;
        Assert.True(span >= TimeSpan.FromMilliseconds(((total + perSecond - 1) / perSecond - 2) * 1000 - 200),
            $"{total} tasks at {perSecond}/s over all lanes started within {span.TotalMilliseconds:0} ms: {Offsets(starts)}");
        AssertAtMostPerSecond(starts, perSecond, "all lanes");
    }
}
