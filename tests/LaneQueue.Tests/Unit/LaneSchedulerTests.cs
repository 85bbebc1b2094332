using LaneQueue.Consumer;
using LaneQueue.Contracts;

namespace LaneQueue.Tests.Unit;

/// <summary>The scheduling decision core on its own: no broker, no clock but the one the test passes.</summary>
public class LaneSchedulerTests
{
    static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    static LaneScheduler Scheduler(int budget = 4, int[]? limits = null, int[]? reserved = null, bool holdForReady = true,
        GateMode mode = GateMode.WorkConserving, PriorityBoost? boost = null, int holdMs = 100) =>
        new(new SchedulerRules(budget, limits ?? [2, 4, 2, 1], reserved ?? [0, 0, 0, 0], boost ?? new PriorityBoost { Strategy = BoostStrategy.Disabled },
            holdForReady, mode, 1, TimeSpan.FromMilliseconds(holdMs)));

    static LaneScheduler.Ticket Add(LaneScheduler scheduler, SessionLane lane, string id, DateTimeOffset? at = null)
    {
        var ticket = new LaneScheduler.Ticket(lane, at ?? T0, id);
        scheduler.Add(ticket);
        return ticket;
    }

    /// <summary>Starts whatever the scheduler lets start now, returning the ids in start order.</summary>
    static List<string> StartAll(LaneScheduler scheduler, DateTimeOffset? now = null, Func<SessionLane, bool>? hasToken = null)
    {
        var started = new List<string>();
        while (scheduler.Decide(now ?? T0, hasToken).Start is { } ticket)
            started.Add((string)ticket.State!);
        return started;
    }

    static long[] Ready(long control = 0, long query = 0, long execute = 0, long generate = 0) => [control, query, execute, generate];

    static void AddSession(LaneScheduler scheduler, SessionLane lane, string session, int count)
    {
        for (var i = 1; i <= count; i++)
            scheduler.Add(new LaneScheduler.Ticket(lane, T0, $"{session}{i}", session));
    }

    /// <summary>Starts one task at a time (each ends before the next decision), returning the ids in start order.</summary>
    static List<string> OneAtATime(LaneScheduler scheduler, SessionLane lane, int count)
    {
        var started = new List<string>();
        for (var i = 0; i < count && scheduler.Decide(T0).Start is { } ticket; i++)
        {
            started.Add((string)ticket.State!);
            scheduler.Finished(lane);
        }
        return started;
    }

    [Fact]
    public void Sessions_of_a_lane_take_turns_and_each_keeps_its_own_order()
    {
        var s = Scheduler(budget: 1, limits: [1, 1, 1, 1]);
        AddSession(s, SessionLane.Generate, "a", 5);
        AddSession(s, SessionLane.Generate, "b", 2);
        AddSession(s, SessionLane.Generate, "c", 1);
        Assert.Equal(["a1", "b1", "c1", "a2", "b2", "a3", "a4", "a5"], OneAtATime(s, SessionLane.Generate, 8));
    }

    [Fact]
    public void A_session_that_arrives_later_goes_before_the_next_task_of_one_that_just_ran()
    {
        var s = Scheduler(budget: 1, limits: [1, 1, 1, 1]);
        AddSession(s, SessionLane.Generate, "a", 4);
        Assert.Equal(["a1", "a2"], OneAtATime(s, SessionLane.Generate, 2));
        AddSession(s, SessionLane.Generate, "b", 2);
        Assert.Equal(["b1", "a3", "b2", "a4"], OneAtATime(s, SessionLane.Generate, 4));
    }

    [Fact]
    public void Tasks_without_a_session_are_one_session_in_arrival_order()
    {
        var s = Scheduler(budget: 1, limits: [1, 1, 1, 1]);
        Add(s, SessionLane.Generate, "n1");
        Add(s, SessionLane.Generate, "n2");
        AddSession(s, SessionLane.Generate, "a", 2);
        Add(s, SessionLane.Generate, "n3");
        Assert.Equal(["n1", "a1", "n2", "a2", "n3"], OneAtATime(s, SessionLane.Generate, 5));
    }

    static LaneScheduler Limited(int budget, int sessionLimit) =>
        new(new SchedulerRules(budget, [4, 4, 4, 4], [0, 0, 0, 0], new PriorityBoost { Strategy = BoostStrategy.Disabled }, true, GateMode.WorkConserving, 1,
            TimeSpan.FromMilliseconds(100), [0, 0, 0, sessionLimit]));

    [Fact]
    public void A_session_at_its_limit_waits_in_order_while_other_sessions_take_the_slots()
    {
        var s = Limited(budget: 4, sessionLimit: 1);
        AddSession(s, SessionLane.Generate, "a", 3);
        AddSession(s, SessionLane.Generate, "b", 2);
        // One of each session runs; the rest of the budget stays free rather than run a second task of a session.
        Assert.Equal(["a1", "b1"], StartAll(s));
        Assert.Equal(1, s.RunningOf(SessionLane.Generate, "a"));
        s.Finished(SessionLane.Generate, "b");
        Assert.Equal(["b2"], StartAll(s));
        s.Finished(SessionLane.Generate, "a");
        Assert.Equal(["a2"], StartAll(s));
        s.Finished(SessionLane.Generate, "a");
        Assert.Equal(["a3"], StartAll(s));
        Assert.Equal(1, s.RunningOf(SessionLane.Generate, "b"));
        s.Finished(SessionLane.Generate, "b");
        Assert.Equal(0, s.RunningOf(SessionLane.Generate, "b"));
    }

    [Fact]
    public void A_lane_whose_waiting_sessions_are_all_at_their_limit_passes_its_turn()
    {
        var s = Limited(budget: 4, sessionLimit: 2);
        AddSession(s, SessionLane.Generate, "a", 4);
        Add(s, SessionLane.Execute, "e0");
        s.SetReady(Ready(), T0);
        // execute is above generate and starts first; generate takes two of session a, its limit.
        Assert.Equal(["e0", "a1", "a2"], StartAll(s));
        // a3 and a4 wait for a's running tasks, not for the budget: nothing is held and nothing is contended.
        var decision = s.Decide(T0);
        Assert.Null(decision.Start);
        Assert.Null(decision.Contended);
        Assert.Null(decision.HeldFor);
    }

    [Fact]
    public void A_limited_session_starts_its_tasks_in_delivery_order_though_they_finish_reading_in_any()
    {
        var s = Limited(budget: 4, sessionLimit: 1);
        var first = new LaneScheduler.DeliveryPlace("lanequeue.generate.s01", 1);
        var second = new LaneScheduler.DeliveryPlace("lanequeue.generate.s01", 2);
        s.ArrivingAt(first, true);
        s.Add(new LaneScheduler.Ticket(SessionLane.Generate, T0, "a2", "a", second));
        // Delivery 1 is still being read: delivery 2 of the same queue waits for it, whatever its session.
        Assert.Empty(StartAll(s));
        s.ArrivingAt(first, false);
        s.Add(new LaneScheduler.Ticket(SessionLane.Generate, T0, "a1", "a", first));
        Assert.Equal(["a1"], StartAll(s));
        s.Finished(SessionLane.Generate, "a");
        Assert.Equal(["a2"], StartAll(s));
    }

    /// <summary>A delivery of a limited lane's queue read here: it began arriving, then waits for a slot.</summary>
    static void Delivered(LaneScheduler s, string queue, ulong tag, string id, string session, DateTimeOffset at)
    {
        var place = new LaneScheduler.DeliveryPlace(queue, tag);
        s.ArrivingAt(place, true);
        s.ArrivingAt(place, false);
        s.Add(new LaneScheduler.Ticket(SessionLane.Generate, at, id, session, place));
    }

    [Fact]
    public void A_limited_session_waits_for_an_earlier_delivery_handed_to_the_process_that_has_not_begun_reading()
    {
        const string queue = "lanequeue.generate.s01";
        var s = Limited(budget: 4, sessionLimit: 1);
        Delivered(s, queue, 1, "a1", "a", T0);
        Assert.Equal(["a1"], StartAll(s));
        s.Finished(SessionLane.Generate, "a");
        // Delivery 3 is read before delivery 2 (RabbitMQ.Client hands deliveries to MassTransit on several threads): it waits,
        // though delivery 2 never began arriving here yet, and the decision says when to look again.
        Delivered(s, queue, 3, "a3", "a", T0);
        var held = s.Decide(T0);
        Assert.Null(held.Start);
        Assert.Equal(T0 + LaneScheduler.GapWait, held.DecideAgainAt);
        Delivered(s, queue, 2, "a2", "a", T0.AddMilliseconds(5));
        Assert.Equal(["a2"], StartAll(s, T0.AddMilliseconds(5)));
        s.Finished(SessionLane.Generate, "a");
        Assert.Equal(["a3"], StartAll(s, T0.AddMilliseconds(6)));
    }

    [Fact]
    public void A_delivery_that_never_comes_holds_the_later_ones_only_for_the_gap_wait_and_a_new_channel_starts_afresh()
    {
        const string queue = "lanequeue.generate.s01";
        var s = Limited(budget: 4, sessionLimit: 1);
        Delivered(s, queue, 1, "a1", "a", T0);
        Delivered(s, queue, 3, "b3", "b", T0);
        Assert.Equal(["a1"], StartAll(s));
        Assert.Empty(StartAll(s, T0 + LaneScheduler.GapWait - TimeSpan.FromMilliseconds(1)));
        Assert.Equal(["b3"], StartAll(s, T0 + LaneScheduler.GapWait));
        Delivered(s, queue, 4, "b4", "b", T0 + LaneScheduler.GapWait);
        s.Finished(SessionLane.Generate, "b");
        Assert.Equal(["b4"], StartAll(s, T0 + LaneScheduler.GapWait)); // the gap was given up once, not again for each task
        s.Finished(SessionLane.Generate, "b");
        // The endpoint restarted: its new channel numbers deliveries from 1 again.
        Delivered(s, queue, 1, "c1", "c", T0 + LaneScheduler.GapWait);
        Assert.Equal(["c1"], StartAll(s, T0 + LaneScheduler.GapWait));
    }

    [Fact]
    public void Without_a_session_limit_an_unread_earlier_delivery_holds_nothing()
    {
        var s = Limited(budget: 4, sessionLimit: 0);
        Delivered(s, "lanequeue.generate", 3, "a3", "a", T0);
        Assert.Equal(["a3"], StartAll(s));
    }

    [Fact]
    public void A_limited_sessions_next_task_waits_until_the_last_one_ended_for_good_not_just_its_slot()
    {
        var s = Limited(budget: 1, sessionLimit: 1);
        AddSession(s, SessionLane.Generate, "a", 2);
        AddSession(s, SessionLane.Generate, "b", 1);
        Assert.Equal(["a1"], StartAll(s));
        // a1's handler returned (slot back) but its result is not confirmed yet: the slot goes to b, not to a2.
        s.FinishedSlot(SessionLane.Generate);
        Assert.Equal(["b1"], StartAll(s));
        s.Finished(SessionLane.Generate, "b");
        Assert.Empty(StartAll(s));
        s.SessionEnded(SessionLane.Generate, "a");
        Assert.Equal(["a2"], StartAll(s));
    }

    [Fact]
    public void Without_a_session_limit_a_session_takes_every_free_slot()
    {
        var s = Limited(budget: 4, sessionLimit: 0);
        AddSession(s, SessionLane.Generate, "a", 3);
        Assert.Equal(["a1", "a2", "a3"], StartAll(s));
    }

    [Fact]
    public void Session_turns_are_kept_per_lane_and_never_change_lane_order()
    {
        var s = Scheduler(budget: 1, limits: [1, 1, 1, 1]);
        AddSession(s, SessionLane.Generate, "a", 2);
        AddSession(s, SessionLane.Query, "a", 1);
        AddSession(s, SessionLane.Generate, "b", 1);
        Assert.Equal(["a1"], OneAtATime(s, SessionLane.Query, 1)); // query first, whatever the session
        Assert.Equal(["a1", "b1", "a2"], OneAtATime(s, SessionLane.Generate, 3));
    }

    [Fact]
    public void A_free_slot_goes_to_the_highest_lane_with_a_waiting_task()
    {
        var s = Scheduler(budget: 1);
        Add(s, SessionLane.Generate, "g");
        Add(s, SessionLane.Execute, "e");
        Add(s, SessionLane.Query, "q");
        Assert.Equal(["q"], StartAll(s));
        s.Finished(SessionLane.Query);
        Assert.Equal(["e"], StartAll(s));
        s.Finished(SessionLane.Execute);
        Assert.Equal(["g"], StartAll(s));
    }

    [Fact]
    public void A_lane_at_its_limit_passes_its_turn_so_no_slot_stays_idle()
    {
        var s = Scheduler(budget: 4, limits: [2, 4, 2, 1]);
        for (var i = 0; i < 5; i++)
            Add(s, SessionLane.Control, $"c{i}");
        Add(s, SessionLane.Generate, "g0");
        Add(s, SessionLane.Generate, "g1");
        Add(s, SessionLane.Execute, "e0");
        // control fills its 2, then the next lanes with work take the rest: execute before generate, generate at its 1
        Assert.Equal(["c0", "c1", "e0", "g0"], StartAll(s));
        Assert.Equal(4, s.InUse);
    }

    [Fact]
    public void An_operator_pause_stops_only_that_lane()
    {
        var s = Scheduler(budget: 2);
        Add(s, SessionLane.Control, "c");
        Add(s, SessionLane.Generate, "g");
        s.SetPaused(SessionLane.Control, true);
        Assert.Equal(["g"], StartAll(s));
        s.SetPaused(SessionLane.Control, false);
        Assert.Equal(["c"], StartAll(s));
    }

    [Fact]
    public void A_lane_without_a_token_passes_its_turn()
    {
        var s = Scheduler(budget: 1);
        Add(s, SessionLane.Query, "q");
        Add(s, SessionLane.Generate, "g");
        Assert.Equal(["g"], StartAll(s, hasToken: lane => lane != SessionLane.Query));
    }

    [Fact]
    public void A_full_budget_names_the_lane_it_keeps_waiting()
    {
        var s = Scheduler(budget: 1);
        Add(s, SessionLane.Generate, "g");
        Assert.Equal(["g"], StartAll(s));
        Add(s, SessionLane.Query, "q");
        var decision = s.Decide(T0);
        Assert.Null(decision.Start);
        Assert.Equal(SessionLane.Query, decision.Contended);
    }

    [Fact]
    public void A_free_slot_is_held_for_a_higher_lane_delivery_still_being_read_here_and_the_hold_ends_when_it_waits()
    {
        var s = Scheduler(budget: 4);
        Add(s, SessionLane.Generate, "g");
        s.Arriving(SessionLane.Query, +1); // delivered, not yet waiting; no ready count at the broker
        var decision = s.Decide(T0);
        Assert.Null(decision.Start);
        Assert.Equal(SessionLane.Query, decision.HeldFor);
        Assert.Null(decision.DecideAgainAt); // no timer: the arrival itself decides again
        s.Arriving(SessionLane.Query, -1);
        Add(s, SessionLane.Query, "q");
        Assert.Equal(["q", "g"], StartAll(s));
    }

    [Fact]
    public void An_arriving_delivery_holds_no_slot_with_the_gate_off_nor_when_its_lane_is_at_its_limit()
    {
        var off = Scheduler(budget: 4, holdForReady: false);
        Add(off, SessionLane.Generate, "g");
        off.Arriving(SessionLane.Query, +1);
        Assert.Equal(["g"], StartAll(off));

        var full = Scheduler(budget: 4, limits: [2, 1, 2, 1]);
        Add(full, SessionLane.Query, "q0");
        Assert.Equal(["q0"], StartAll(full));
        full.Arriving(SessionLane.Query, +1); // query is at its limit of 1: it could not start the arrival anyway
        Add(full, SessionLane.Generate, "g");
        Assert.Equal(["g"], StartAll(full));
    }

    [Fact]
    public void A_free_slot_is_held_for_ready_higher_lane_work_this_process_could_start()
    {
        var s = Scheduler(budget: 4);
        Add(s, SessionLane.Generate, "g");
        s.SetReady(Ready(query: 5), T0);
        var decision = s.Decide(T0);
        Assert.Null(decision.Start);
        Assert.Equal(SessionLane.Query, decision.HeldFor);
        Assert.Equal(T0.AddMilliseconds(100), decision.DecideAgainAt); // when the counts are too old to trust
        // the query arrives: it starts, and the hold is over
        Add(s, SessionLane.Query, "q");
        Assert.Equal(["q"], StartAll(s));
    }

    [Fact]
    public void No_slot_is_held_for_a_higher_lane_this_process_cannot_start()
    {
        // control at its limit of 2 here: its ready work cannot start on this process, so generate gets the free slot
        var s = Scheduler(budget: 4, limits: [2, 4, 2, 1]);
        Add(s, SessionLane.Control, "c0");
        Add(s, SessionLane.Control, "c1");
        Assert.Equal(["c0", "c1"], StartAll(s));
        Add(s, SessionLane.Generate, "g");
        s.SetReady(Ready(control: 50), T0);
        Assert.Equal(["g"], StartAll(s));

        // a lane whose tasks here wait for a rate-limit or fleet token cannot start either
        var blocked = Scheduler(budget: 4);
        blocked.Blocked(SessionLane.Query, +1);
        Add(blocked, SessionLane.Generate, "g");
        blocked.SetReady(Ready(query: 50), T0);
        Assert.Equal(["g"], StartAll(blocked));

        // nor a lane an operator paused
        var paused = Scheduler(budget: 4);
        paused.SetPaused(SessionLane.Control, true);
        Add(paused, SessionLane.Generate, "g");
        paused.SetReady(Ready(control: 50), T0);
        Assert.Equal(["g"], StartAll(paused));
    }

    [Fact]
    public void The_strict_rule_holds_lower_lanes_behind_any_higher_lane_with_ready_work()
    {
        var s = Scheduler(budget: 4, limits: [2, 4, 2, 1], mode: GateMode.Strict);
        Add(s, SessionLane.Control, "c0");
        Add(s, SessionLane.Control, "c1");
        Assert.Equal(["c0", "c1"], StartAll(s));
        Add(s, SessionLane.Generate, "g");
        s.SetReady(Ready(control: 50), T0);
        Assert.Empty(StartAll(s)); // two slots idle: the control lane is at its limit, and generate still waits
    }

    [Fact]
    public void With_the_gate_off_no_slot_is_held_for_work_at_the_broker()
    {
        var s = Scheduler(budget: 4, holdForReady: false);
        Add(s, SessionLane.Generate, "g");
        s.SetReady(Ready(query: 5), T0);
        Assert.Equal(["g"], StartAll(s));
    }

    [Fact]
    public void A_slot_is_held_only_while_the_monitors_counts_are_fresh()
    {
        var s = Scheduler(budget: 4, holdMs: 3000);
        Add(s, SessionLane.Generate, "g0");
        Add(s, SessionLane.Generate, "g1");
        s.SetReady(Ready(query: 5), T0);
        Assert.Empty(StartAll(s, T0));
        Assert.Empty(StartAll(s, T0.AddMilliseconds(2999)));
        // the monitor went quiet: its counts are no reason to keep a slot idle any longer
        Assert.Equal(["g0"], StartAll(s, T0.AddMilliseconds(3000)));
        s.Finished(SessionLane.Generate);
        // a new broadcast still says query has work: held again
        s.SetReady(Ready(query: 4), T0.AddMilliseconds(3100));
        Assert.Empty(StartAll(s, T0.AddMilliseconds(3200)));
        // and a broadcast that says the work is gone releases the slot at once
        s.SetReady(Ready(), T0.AddMilliseconds(3300));
        Assert.Equal(["g1"], StartAll(s, T0.AddMilliseconds(3300)));
    }

    [Fact]
    public void Reserved_slots_keep_room_for_their_lane_and_the_lanes_above_it()
    {
        var s = Scheduler(budget: 2, limits: [2, 4, 2, 2], reserved: [0, 1, 0, 0]);
        Add(s, SessionLane.Generate, "g0");
        Add(s, SessionLane.Generate, "g1");
        Assert.Equal(["g0"], StartAll(s)); // the second slot is the query lane's
        Add(s, SessionLane.Query, "q");
        Assert.Equal(["q"], StartAll(s));
        s.Finished(SessionLane.Query);
        Add(s, SessionLane.Control, "c"); // a lane above query may use query's slot
        Assert.Equal(["c"], StartAll(s));

        // a running query uses the reserved slot, so the unreserved one is free for generate
        var t = Scheduler(budget: 2, limits: [2, 4, 2, 2], reserved: [0, 1, 0, 0]);
        Add(t, SessionLane.Query, "q");
        Assert.Equal(["q"], StartAll(t));
        Add(t, SessionLane.Generate, "g");
        Assert.Equal(["g"], StartAll(t));
    }

    [Fact]
    public void Aging_lifts_a_lane_that_waited_past_its_deadline_above_every_other()
    {
        var s = Scheduler(budget: 1, boost: new PriorityBoost { Strategy = BoostStrategy.Standard, DeadlineMs = 1000 });
        Add(s, SessionLane.Generate, "g", T0);
        Add(s, SessionLane.Query, "q0", T0);
        Add(s, SessionLane.Query, "q1", T0);
        Assert.Equal(["q0"], StartAll(s, T0.AddMilliseconds(100)));
        s.Finished(SessionLane.Query);
        Assert.Equal(2, s.BoostLevels(SessionLane.Generate, T0.AddMilliseconds(600)));
        Assert.Equal(["q1"], StartAll(s, T0.AddMilliseconds(600))); // boosted by 2 levels: generate (3) - 2 = 1, query (1) first
        s.Finished(SessionLane.Query);
        Add(s, SessionLane.Query, "q2", T0.AddMilliseconds(900));
        Assert.Equal(["g"], StartAll(s, T0.AddMilliseconds(1000))); // past the deadline: top priority
    }

    [Fact]
    public void A_start_resets_the_lanes_aging_clock()
    {
        var s = Scheduler(budget: 1, boost: new PriorityBoost { Strategy = BoostStrategy.Standard, DeadlineMs = 1000 });
        Add(s, SessionLane.Generate, "g0", T0);
        Add(s, SessionLane.Generate, "g1", T0);
        Assert.Equal(["g0"], StartAll(s, T0.AddMilliseconds(900)));
        s.Finished(SessionLane.Generate);
        Assert.Equal(0, s.BoostLevels(SessionLane.Generate, T0.AddMilliseconds(950)));
    }
}
