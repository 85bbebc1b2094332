using LaneQueue.Consumer;
using LaneQueue.Contracts;

namespace LaneQueue.Tests.Unit;

public class SlotBudgetTests
{
    [Fact]
    public async Task Grants_up_to_capacity_then_waits()
    {
        var budget = new SlotBudget(2);
        using var a = await budget.AcquireAsync(SessionLane.Generate);
        using var b = await budget.AcquireAsync(SessionLane.Generate);
        var c = budget.AcquireAsync(SessionLane.Generate);
        Assert.False(c.IsCompleted);
        Assert.Equal(2, budget.InUse);
        a.Dispose();
        using var granted = await c.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(2, budget.InUse);
    }

    [Fact]
    public async Task A_freed_slot_goes_to_the_highest_waiting_lane()
    {
        var budget = new SlotBudget(1);
        var held = await budget.AcquireAsync(SessionLane.Execute);
        var generate = budget.AcquireAsync(SessionLane.Generate);
        var execute = budget.AcquireAsync(SessionLane.Execute);
        var control = budget.AcquireAsync(SessionLane.Control);

        held.Dispose();
        var first = await control.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.False(generate.IsCompleted || execute.IsCompleted);
        first.Dispose();
        var second = await execute.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.False(generate.IsCompleted);
        second.Dispose();
        (await generate.WaitAsync(TimeSpan.FromSeconds(5))).Dispose();
        Assert.Equal(0, budget.InUse);
    }

    [Fact]
    public async Task A_cancelled_waiter_does_not_swallow_a_slot()
    {
        var budget = new SlotBudget(1);
        var held = await budget.AcquireAsync(SessionLane.Query);
        using var cancel = new CancellationTokenSource();
        var cancelled = budget.AcquireAsync(SessionLane.Control, cancel.Token);
        var waiting = budget.AcquireAsync(SessionLane.Generate);
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);
        held.Dispose();
        (await waiting.WaitAsync(TimeSpan.FromSeconds(5))).Dispose();
        Assert.Equal(0, budget.InUse);
    }

    [Fact]
    public async Task Releasing_twice_frees_one_slot()
    {
        var budget = new SlotBudget(1);
        var slot = await budget.AcquireAsync(SessionLane.Query);
        slot.Dispose();
        slot.Dispose();
        Assert.Equal(0, budget.InUse);
        Assert.True(budget.AcquireAsync(SessionLane.Query).IsCompletedSuccessfully);
        Assert.False(budget.AcquireAsync(SessionLane.Query).IsCompleted);
    }
}
