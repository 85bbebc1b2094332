using System.Text.Json;
using LaneQueue.Consumer;
using LaneQueue.Contracts;
using LaneQueue.Producer;
using LaneQueue.Tests.Broker;
using Microsoft.Extensions.Hosting;

namespace LaneQueue.Tests.Integration;

/// <summary>
/// A consumer's heartbeat lists each lane's busiest sessions (running here, waiting here for a slot) with the lane's
/// per-session limit and shard count: <c>SessionLimits:Generate=1</c>, 2 shards, and held generate tasks of two sessions and
/// one without a session, read back through the broker as fleet stats read them.
/// </summary>
[Collection(BrokerCollection.Name)]
public sealed class SessionHeartbeatTests(BrokerFixture broker) : IAsyncLifetime
{
    const int Shards = 2;
    readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
    TestVhost _vhost = null!;
    IHost _consumer = null!;
    LaneQueueProducer _producer = null!;

    public async Task InitializeAsync()
    {
        _vhost = await broker.CreateVhostAsync();
        _consumer = await ConsumerHost.StartAsync(_vhost.Url, o =>
        {
            o.HeartbeatIntervalMs = 200;
            o.SlotBudget = 4;
            o.Queue = o.Queue with { GenerateMaxConcurrency = 4 }; // prefetch 8 per queue: every task below reaches the consumer
            o.SessionShards[SessionLane.Generate] = Shards;
            o.SessionLimits[SessionLane.Generate] = 1;
        }, h => h.AddHandler("hold", async context =>
        {
            await _release.Task.WaitAsync(context.CancellationToken);
            return null;
        }), "session-beat");
        var options = new ProducerOptions { RabbitMqUrl = _vhost.Url };
        options.SessionShards[SessionLane.Generate] = Shards;
        options.SessionLimits[SessionLane.Generate] = 1;
        _producer = await LaneQueueProducer.ConnectAsync(options);
    }

    public async Task DisposeAsync()
    {
        _release.TrySetResult();
        await _producer.DisposeAsync();
        await _consumer.StopQuietlyAsync();
        await _vhost.DisposeAsync();
    }

    static ExternalTask Hold(string id, string? session) =>
        ExternalTask.Create(id, SessionLane.Generate, null, "hold") with { SessionId = session };

    [Fact]
    public async Task The_heartbeat_lists_each_sessions_running_and_waiting_tasks_with_the_lanes_session_limit_and_shards()
    {
        foreach (var i in Enumerable.Range(1, 3))
            await _producer.SubmitTaskAsync(Hold($"a-{i}", "session-a"));
        foreach (var i in Enumerable.Range(1, 2))
            await _producer.SubmitTaskAsync(Hold($"b-{i}", "session-b"));
        await _producer.SubmitTaskAsync(Hold("solo", null));

        // Sequential sessions: one of each runs, the others wait in the consumer; tasks without a session are one session.
        (string?, int, int)[] expected = [("session-a", 1, 2), ("session-b", 1, 1), (null, 1, 0)];
        LaneHeartbeat? generate = null;
        await TestVhost.EventuallyAsync(async () =>
        {
            var stats = await _producer.ReadStatsAsync(TimeSpan.FromMilliseconds(500));
            generate = stats.Consumers.SingleOrDefault(c => c.Consumer == "session-beat")?.Lanes.Single(l => l.Lane == SessionLane.Generate);
            return generate is not null && generate.Sessions.Select(s => (s.Session, s.Running, s.Waiting)).SequenceEqual(expected);
        }, $"the heartbeat lists {string.Join(", ", expected)}", timeoutSeconds: 30);

        Assert.Equal(1, generate!.SessionLimit);
        Assert.Equal(Shards, generate.SessionShards);
        Assert.Equal(3, generate.Active);
        var query = (await _producer.ReadStatsAsync(TimeSpan.FromMilliseconds(500))).Consumers.Single().Lanes.Single(l => l.Lane == SessionLane.Query);
        Assert.Empty(query.Sessions);
        Assert.Null(query.SessionLimit);
        Assert.Equal(0, query.SessionShards);

        // Released, the waiting ones run in turn and the list empties.
        _release.TrySetResult();
        await TestVhost.EventuallyAsync(async () =>
            (await _producer.ReadStatsAsync(TimeSpan.FromMilliseconds(500))).Consumers.Single().Lanes.Single(l => l.Lane == SessionLane.Generate).Sessions.Count == 0,
            "no session left in the heartbeat", timeoutSeconds: 30);
    }
}

/// <summary>The heartbeat's session fields on the wire (no broker needed).</summary>
public sealed class SessionHeartbeatJsonTests
{
    [Fact]
    public void The_new_heartbeat_fields_are_snake_case_and_a_heartbeat_without_them_reads_as_no_sessions_no_limit_no_shards()
    {
        var beat = new LaneHeartbeat
        {
            Lane = SessionLane.Generate,
            Sessions = [new SessionHeartbeat { Session = "s-1", Running = 1, Waiting = 2 }, new SessionHeartbeat { Running = 3 }],
            SessionLimit = 1,
            SessionShards = 8,
        };
        using var json = JsonDocument.Parse(TaskJson.Serialize(beat));
        var root = json.RootElement;
        Assert.Equal(1, root.GetProperty("session_limit").GetInt32());
        Assert.Equal(8, root.GetProperty("session_shards").GetInt32());
        var sessions = root.GetProperty("sessions").EnumerateArray().ToList();
        Assert.Equal(["session", "running", "waiting"], sessions[0].EnumerateObject().Select(p => p.Name));
        Assert.Equal(["running", "waiting"], sessions[1].EnumerateObject().Select(p => p.Name)); // no session: left out, as nulls are

        // A consumer from before these fields: no sessions, no limit, no shards.
        var old = TaskJson.Deserialize<LaneHeartbeat>("""{"lane":"generate","active":1,"max_concurrency":2}"""u8);
        Assert.Empty(old.Sessions);
        Assert.Null(old.SessionLimit);
        Assert.Equal(0, old.SessionShards);
    }

    [Fact]
    public void The_dashboard_sums_each_sessions_tasks_over_the_consumers_keeps_the_busiest_ten_and_shows_differing_limits()
    {
        static ConsumerHeartbeat Beat(string name, int? limit, params SessionHeartbeat[] sessions) => new()
        {
            Consumer = name,
            Lanes = [new LaneHeartbeat { Lane = SessionLane.Generate, Sessions = sessions, SessionLimit = limit, SessionShards = 4 }],
        };
        var first = Beat("c-1", 1, [new() { Session = "a", Running = 1, Waiting = 2 }, new() { Running = 1 },
            .. Enumerable.Range(1, 9).Select(i => new SessionHeartbeat { Session = $"small-{i}", Waiting = 1 })]);
        var second = Beat("c-2", null, new SessionHeartbeat { Session = "a", Running = 1 }, new SessionHeartbeat { Session = "b", Running = 1, Waiting = 1 });

        var view = LaneQueue.Dashboard.LaneSessionsView.Of(SessionLane.Generate, [first, second]);

        Assert.Equal(10, view.Top.Count);
        Assert.Equal(("a", 2, 2), (view.Top[0].Session, view.Top[0].Running, view.Top[0].Waiting));
        Assert.Equal(("b", 1, 1), (view.Top[1].Session, view.Top[1].Running, view.Top[1].Waiting));
        Assert.Equal((null, 1, 0), (view.Top[2].Session, view.Top[2].Running, view.Top[2].Waiting));
        Assert.Equal(new int?[] { null, 1 }, view.Limits);
        Assert.Equal(new[] { 4 }, view.Shards);
        Assert.Empty(LaneQueue.Dashboard.LaneSessionsView.Of(SessionLane.Query, [first, second]).Top);
        Assert.Empty(LaneQueue.Dashboard.LaneSessionsView.Of(SessionLane.Generate, []).Limits);
    }
}
