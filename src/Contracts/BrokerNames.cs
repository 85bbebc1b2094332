namespace LaneQueue.Contracts;

/// <summary>
/// Every name LaneQueue uses on the broker, in one place. Producers publish to <see cref="TasksExchange"/>
/// with the lane name as routing key; results come back on <see cref="ResultsExchange"/> with the task id
/// as routing key.
/// </summary>
public static class BrokerNames
{
    public const string Prefix = "lanequeue";

    /// <summary>Direct exchange every producer publishes tasks to; routing key = lane name.</summary>
    public const string TasksExchange = "lanequeue.tasks";

    /// <summary>Topic exchange of <see cref="ExternalTaskResult"/>s; routing key = task id (bind <c>#</c> for all).</summary>
    public const string ResultsExchange = "lanequeue.results";

    /// <summary>The single queue of the priority-queue topology.</summary>
    public const string PriorityQueue = "lanequeue.priority";

    public static string RoutingKey(SessionLane lane) => lane.WireName();

    /// <summary>The durable queue of a lane in the queue-per-lane topology, e.g. <c>lanequeue.query</c>.</summary>
    public static string LaneQueue(SessionLane lane) => $"{Prefix}.{lane.WireName()}";

    /// <summary>
    /// The lane whose queue-per-lane queue is named <paramref name="queue"/> (<see cref="LaneQueue"/>, or one of its
    /// <see cref="SessionShards"/>), or null.
    /// </summary>
    internal static SessionLane? LaneOfQueue(string queue) =>
        SessionLanes.All.Cast<SessionLane?>().FirstOrDefault(lane => LaneQueue(lane!.Value) == queue) ?? SessionShards.LaneOf(queue);

    /// <summary>
    /// Where a queue's dead letters go (MassTransit's error-queue convention), e.g. <c>lanequeue.query_error</c>; a session
    /// shard's go to its lane's (<c>lanequeue.generate.s03</c> -> <c>lanequeue.generate_error</c>), so a lane has one.
    /// </summary>
    public static string DeadLetterQueue(string queue) =>
        (SessionShards.LaneOf(queue) is { } lane ? LaneQueue(lane) : queue) + "_error";

    /// <summary>
    /// Quorum queue with a single active consumer, bound to every lane's <c>_error</c> exchange: a copy of each dead letter,
    /// so one consumer of the fleet answers the ones the broker dead-lettered itself (<c>x-death</c>: delivery limit, TTL,
    /// length limit, a foreign reject) with a <c>failed</c> result. The <c>_error</c> queue keeps the letter for a look and a redrive.
    /// </summary>
    public const string BrokerDeadLetters = "lanequeue.broker-dead-letters";

    /// <summary>The reason a message was dead-lettered (MassTransit's fault header).</summary>
    public const string ReasonHeader = "MT-Fault-Message";

    /// <summary>How many times the task has been retried before this delivery (0 on the first).</summary>
    public const string AttemptHeader = "x-lanequeue-attempt";

    /// <summary>The error of the previous attempt, on a retried task.</summary>
    public const string LastErrorHeader = "x-lanequeue-last-error";

    /// <summary>
    /// Crashes a task was held in before this copy (quorum queues with a delivery limit): a copy LaneQueue put back while it
    /// was a crash suspect carries the broker's <see cref="DeliveryCountHeader"/> of the copy before it here, so the count
    /// survives the publish, which starts the broker's count again.
    /// </summary>
    public const string CrashesHeader = "x-lanequeue-crashes";

    /// <summary>The broker's count of returns of this message to its quorum queue (set by the broker; absent on the first delivery).</summary>
    public const string DeliveryCountHeader = "x-delivery-count";

    /// <summary>Topic exchange of lifecycle events (<see cref="TaskEvent"/>); routing key = <c>command.&lt;kind&gt;.&lt;lane&gt;</c>.</summary>
    public const string EventsExchange = "lanequeue.events";

    /// <summary>Fanout exchange of fleet commands (<see cref="FleetCommand"/>), kept in the stream <see cref="FleetLog"/>.</summary>
    public const string FleetExchange = "lanequeue.fleet";

    /// <summary>Stream queue that keeps fleet commands for a day, so consumers that start later replay them.</summary>
    public const string FleetLog = "lanequeue.fleet.log";

    /// <summary>
    /// Fanout exchange and stream queue (same name) of the fleet's lasting state: <c>pause</c>, <c>resume</c> and
    /// <c>set_handler</c> commands, kept without an age limit so a lane paused a month ago is still paused for a consumer that
    /// starts today, and across broker restarts. The exchange also feeds <see cref="FleetLog"/>, which running consumers follow.
    /// </summary>
    public const string FleetState = "lanequeue.fleet.state";

    /// <summary>
    /// Stream queue of task history, kept for 7 days or 5 GiB, so a task can be looked up by id after it finished: every
    /// result (bound to <see cref="ResultsExchange"/>) and the lifecycle events, which consumers append in batches
    /// (<see cref="HistoryBatchType"/>, default exchange) rather than through <see cref="EventsExchange"/>; a
    /// <c>command.completed</c> event is not stored, its <c>completed</c> result stands for it.
    /// </summary>
    public const string History = "lanequeue.history";

    /// <summary>
    /// Message type of a batch of lifecycle events appended to <see cref="History"/>: body <c>{"events":[event, ...]}</c>,
    /// each element a <see cref="TaskEvent"/> as published on <see cref="EventsExchange"/>.
    /// </summary>
    public const string HistoryBatchType = "lanequeue.history.batch";

    /// <summary>
    /// Header on an event published to <see cref="EventsExchange"/> whose history copy is stored another way (<c>batch</c>:
    /// in a <see cref="HistoryBatchType"/> message; <c>result</c>: its result stands for it). A history reader skips such a
    /// single event, should an older producer have bound <see cref="EventsExchange"/> to <see cref="History"/> again.
    /// </summary>
    public const string HistoryCopyHeader = "x-lanequeue-history";

    /// <summary>
    /// Durable queue holding one message (<c>x-max-length</c> 1): the fleet's per-lane counts up to an offset of
    /// <see cref="History"/>, from which <c>stats</c> reads on, so its counts survive consumer restarts.
    /// </summary>
    public const string HistoryCounts = "lanequeue.history.counts";

    /// <summary>Header of a marker a reader appends to <see cref="History"/> to know where its read ends.</summary>
    public const string HistoryMarkerHeader = "x-lanequeue-history-marker";

    /// <summary>Whether a fleet command is lasting state (kept in <see cref="FleetState"/>) rather than a one-off.</summary>
    public static bool IsFleetState(string command) => command is FleetCommand.Pause or FleetCommand.Resume or FleetCommand.SetHandler
        || IsScheduleCommand(command);

    /// <summary>Whether a fleet command is one of the recurring-schedule commands (lasting state, per schedule id).</summary>
    public static bool IsScheduleCommand(string command) =>
        command is FleetCommand.SchedulePut or FleetCommand.ScheduleRemove or FleetCommand.SchedulePause or FleetCommand.ScheduleResume;

    /// <summary>
    /// Stream queue (1 day) where the fleet monitor appends a <see cref="ScheduleFiring"/> after each confirmed firing of a
    /// recurring schedule: the last firing per schedule for the next monitor (at take-over) and for listing.
    /// </summary>
    public const string SchedulesFired = "lanequeue.schedules.fired";

    /// <summary>
    /// The fleet monitor's election queue: single active consumer, one token message that the active consumer holds unacked
    /// while it is the monitor (the broker hands it, and the office, to the next consumer when its connection closes).
    /// </summary>
    public const string FleetMonitorQueue = "lanequeue.fleet.monitor";

    /// <summary>Fanout exchange where the fleet monitor broadcasts the lane states (which lanes the gate holds, ready depths).</summary>
    public const string LaneStatesExchange = "lanequeue.fleet.lanes";

    /// <summary>Fanout exchange of <see cref="ConsumerHeartbeat"/>s, the source of fleet stats.</summary>
    public const string HeartbeatsExchange = "lanequeue.heartbeats";

    /// <summary>
    /// Topic exchange where External and Hybrid lanes announce tasks: routing key = lane for External work (kept in
    /// <see cref="ExternalQueue"/> until a worker takes it), <c>&lt;lane&gt;.hybrid</c> for Hybrid runs (a notice: the task
    /// runs on the consumer). Bind <c>&lt;lane&gt;.#</c> to see both.
    /// </summary>
    public const string ExternalExchange = "lanequeue.external";

    /// <summary>
    /// Durable queue of a lane's External work, e.g. <c>lanequeue.external.execute</c>, bound to <see cref="ExternalExchange"/>
    /// with the lane as routing key: an announcement waits here for a worker that starts listening later, until the task's
    /// deadline (per-message expiration). Workers consume it with manual acks and compete for its tasks.
    /// </summary>
    public static string ExternalQueue(SessionLane lane) => $"{ExternalExchange}.{lane.WireName()}";

    /// <summary>Routing key of a Hybrid lane's announcement (not routed to <see cref="ExternalQueue"/>).</summary>
    public static string HybridRoutingKey(SessionLane lane) => $"{lane.WireName()}.hybrid";

    /// <summary>Direct exchange where external workers complete tasks; routing key = task id.</summary>
    public const string ExternalCompletionsExchange = "lanequeue.external.completions";

    /// <summary>
    /// The claim queue of a de-duplication key and window (<c>dedup_key</c>, <c>dedup_window_ms</c>): at most one ready
    /// message, the first claimer's, for the window. The key appears hashed (SHA-256, hex): any string, any length, one name.
    /// </summary>
    public static string DedupQueue(string key, long windowMs) =>
        $"{Prefix}.dedup.{Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(key)))}.{windowMs}ms";

    /// <summary>Beside <see cref="DedupQueue"/>: who holds the claim (its task id), read by the tasks that find the key taken.</summary>
    public static string DedupOwnerQueue(string key, long windowMs) => DedupQueue(key, windowMs) + ".owner";

    /// <summary>
    /// A debounced key's latest task (<c>dedup_mode: "debounce"</c>): one message, the id of the last task with the key a
    /// consumer saw (drop-head), for the window; read by the tasks that come due to learn whether a later one replaced them.
    /// </summary>
    public static string DebounceLatestQueue(string key, long windowMs) => DedupQueue(key, windowMs) + ".latest";

    /// <summary>
    /// On a debounced task (<c>dedup_mode: "debounce"</c>) a consumer has recorded as its key's latest and parked in the delay
    /// tree: when it comes due it only reads the record, it does not record itself again.
    /// </summary>
    public const string DebounceSeenHeader = "x-lanequeue-debounce-seen";

    /// <summary>
    /// One publish of a task id (optional): a token its publisher sets, new for each publish (the schedule firer does), and
    /// every LaneQueue republish (retry, return to the lane, delay) keeps. A <c>dedup_key</c> claim held by the same task id
    /// with another token is a second copy of that id and is answered <c>duplicate</c>; without tokens on both, a task with the
    /// holder's id is the holder delivered again and runs.
    /// </summary>
    public const string CopyHeader = "x-lanequeue-copy";

    /// <summary>
    /// The classic holding queue in which LaneQueue 1.3 and earlier parked a lane's retries for <paramref name="delay"/> (TTL,
    /// then dead-lettered back to the lane). Since 1.4 retries wait in the delay tree (<see cref="DelayQueue"/>); a vhost
    /// upgraded from 1.3 may still have these queues: they empty themselves into their lanes and can be deleted once empty.
    /// </summary>
    public static string RetryQueue(SessionLane lane, TimeSpan delay) => RetryQueue(RoutingKey(lane), delay);

    /// <summary>
    /// The 1.3 holding queue of retries that went back to <paramref name="routingKey"/> (a lane, or a session shard:
    /// <c>lanequeue.generate.s03.retry.2000ms</c>) after <paramref name="delay"/>; see the overload above.
    /// </summary>
    public static string RetryQueue(string routingKey, TimeSpan delay) => $"{Prefix}.{routingKey}.retry.{(long)delay.TotalMilliseconds}ms";

    /// <summary>
    /// Delayed tasks: the topic exchange of hop level <paramref name="level"/> (0 = shortest) of the delay tree (e.g.
    /// <c>lanequeue.delay.07</c>), routing to the level's queue (<see cref="DelayQueue"/>) or on to the next lower level. Up to
    /// 1.2 the level's queue had this name too (a classic queue; retired when the topology is declared). See
    /// <c>docs/wire-contract.md</c>, <i>Delayed tasks</i>.
    /// </summary>
    public static string DelayLevel(int level) => $"{Prefix}.delay.{level:00}";

    /// <summary>
    /// Delayed tasks: the queue of hop level <paramref name="level"/> (e.g. <c>lanequeue.delay.07.quorum</c>), a quorum queue
    /// whose messages wait <c>DelayBase x 2^level</c> (queue TTL) before the broker dead-letters them, at least once, to the
    /// next lower level.
    /// </summary>
    public static string DelayQueue(int level) => $"{DelayLevel(level)}.quorum";

    /// <summary>Topic exchange the last hop of the delay tree delivers to: bound <c>#.&lt;lane&gt;</c> to each lane's queue exchange.</summary>
    public const string DelayDeliver = "lanequeue.delay.deliver";

    /// <summary>
    /// On a delayed task that was routed into the delay tree: when it is due (Unix time in milliseconds). A consumer that
    /// receives it earlier (clock differences) routes it into the tree again for what is left; later, it runs.
    /// </summary>
    public const string DueHeader = "x-lanequeue-due";

    public static string EventRoutingKey(string kind, SessionLane lane) => $"{kind}.{lane.WireName()}";
}
