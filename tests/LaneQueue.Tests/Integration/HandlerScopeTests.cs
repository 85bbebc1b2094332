using System.Collections.Concurrent;
using LaneQueue.Consumer;
using LaneQueue.Consumer.Testing;
using LaneQueue.Contracts;
using LaneQueue.Tests.Broker;
using Microsoft.Extensions.DependencyInjection;

namespace LaneQueue.Tests.Integration;

/// <summary>
/// A handler with a scoped dependency (the usual case: a <c>DbContext</c>) gets its own scope per task, on a fleet of two
/// consumers whose containers validate scopes (<see cref="ConsumerHost"/>) and in the test harness: one instance per task,
/// never shared between concurrent tasks, disposed when its task has ended.
/// </summary>
[Collection(BrokerCollection.Name)]
public class HandlerScopeTests(BrokerFixture broker)
{
    const int Tasks = 24;

    /// <summary>Stands in for a DbContext: scoped, disposable, not safe to share between concurrent tasks.</summary>
    public sealed class UnitOfWork(ScopeLog log) : IAsyncDisposable
    {
        public Guid Id { get; } = Guid.NewGuid();

        int _inUse;

        public async Task<int> UseAsync()
        {
            if (Interlocked.Increment(ref _inUse) != 1)
                log.Shared.Add(Id);
            await Task.Delay(20);
            Interlocked.Decrement(ref _inUse);
            return 1;
        }

        public ValueTask DisposeAsync()
        {
            log.Disposed.Add(Id);
            return ValueTask.CompletedTask;
        }
    }

    public sealed class ScopeLog
    {
        public ConcurrentBag<Guid> Shared { get; } = [];
        public ConcurrentBag<Guid> Disposed { get; } = [];
        public ConcurrentDictionary<string, (Guid Instance, bool DisposedWhenRunning)> Runs { get; } = new();
    }

    public sealed class ScopedHandler(UnitOfWork work, ScopeLog log) : ITaskHandler
    {
        public const string CommandType = "scoped";

        public async Task<object?> HandleAsync(TaskContext context)
        {
            await work.UseAsync();
            log.Runs[context.Task.Id] = (work.Id, log.Disposed.Contains(work.Id));
            return new { unit = work.Id };
        }
    }

    static void Register(IServiceCollection services, ScopeLog log)
    {
        services.AddSingleton(log);
        services.AddScoped<UnitOfWork>();
    }

    static void AssertOneScopePerTask(ScopeLog log, IEnumerable<ExternalTaskResult> results)
    {
        var list = results.ToList();
        Assert.All(list, r => Assert.True(r.Success, r.Error));
        Assert.Equal(Tasks, log.Runs.Count);
        Assert.Equal(Tasks, log.Runs.Values.Select(r => r.Instance).Distinct().Count());
        Assert.Empty(log.Shared);
        Assert.All(log.Runs.Values, r => Assert.False(r.DisposedWhenRunning));
        Assert.All(log.Runs.Values, r => Assert.Contains(r.Instance, log.Disposed));
        Assert.Equal(Tasks, list.Select(r => r.Result.GetProperty("unit").GetGuid()).Distinct().Count());
    }

    [Fact]
    public async Task A_handler_with_a_scoped_dependency_gets_one_instance_per_task_on_the_fleet_and_it_is_disposed_after_the_task()
    {
        var log = new ScopeLog();
        await using var fleet = new TestFleet(await broker.CreateVhostAsync());
        for (var i = 0; i < 2; i++)
        {
            await fleet.StartConsumerAsync($"scope-{i}", handlers: h =>
            {
                Register(h.Services, log);
                h.AddHandler<ScopedHandler>(ScopedHandler.CommandType);
            });
        }
        var results = await Task.WhenAll(Enumerable.Range(0, Tasks).Select(i => fleet.Producer.SubmitAndWaitAsync(
            ExternalTask.Create($"scoped-{i}", SessionLanes.All[i % 4], new { }, ScopedHandler.CommandType), TimeSpan.FromSeconds(60))));
        Assert.All(results, r => Assert.True(r.Success, r.Error));
        // Disposal follows the handler's return; the result may be back a moment before it.
        await TestVhost.EventuallyAsync(() => Task.FromResult(log.Disposed.Count >= Tasks), $"{Tasks} scopes disposed");
        AssertOneScopePerTask(log, results);
    }

    [Fact]
    public async Task A_handler_with_a_scoped_dependency_gets_one_instance_per_task_in_the_harness()
    {
        var log = new ScopeLog();
        await using var harness = new LaneQueueTestHarness();
        Register(harness.Services, log);
        harness.Consumer.AddHandler<ScopedHandler>(ScopedHandler.CommandType);
        harness.Start();
        var results = await Task.WhenAll(Enumerable.Range(0, Tasks).Select(i => harness.SubmitAndWaitAsync(
            ExternalTask.Create($"scoped-{i}", SessionLanes.All[i % 4], new { }, ScopedHandler.CommandType), TimeSpan.FromSeconds(60))));
        Assert.All(results, r => Assert.True(r.Success, r.Error));
        await harness.WhenIdleAsync(TimeSpan.FromSeconds(30));
        await TestVhost.EventuallyAsync(() => Task.FromResult(log.Disposed.Count >= Tasks), $"{Tasks} scopes disposed");
        AssertOneScopePerTask(log, results);
    }
}
