using LaneQueue.Bench.Infra;

namespace LaneQueue.Bench.Scenarios;

public static class Scenarios
{
    public static readonly (string Id, string Title, string What, Func<BenchContext, ScenarioResult, Task> Run)[] All =
    [
        ("preemption", "1. Preemption latency",
            "Query tasks arriving at a busy fleet: wait from submit to start, LaneQueue vs MassTransit FIFO and x-max-priority baselines.",
            Preemption.RunAsync),
        ("gate", "2. Gate reaction",
            "A burst of query tasks hits a fleet busy on generate work: how fast every consumer stops starting generate tasks, and how many still start.",
            GateReaction.RunAsync),
        ("throughput", "3. Throughput and overhead",
            "No-op tasks, persistent, confirmed, manually acked: LaneQueue versus plain RabbitMQ.Client 7 with the same durability and prefetch.",
            Throughput.RunAsync),
        ("scale", "4. Horizontal scale",
            "1, 2 and 4 consumer processes on one backlog of I/O-bound tasks (sleep 20 ms): throughput per process count.",
            Scale.RunAsync),
        ("memory", "5. Memory",
            "Consumer RSS idle and while a large backlog waits at the broker: it must not grow with the backlog.",
            Memory.RunAsync),
        ("aging", "6. Aging",
            "Under a continuous query flood, how long a generate task waits, versus the priority boost deadline.",
            Aging.RunAsync),
        ("fleet", "7. Fleet size",
            "1 to 32 consumer processes on one broker: broker CPU and frames at idle, deliveries and broker CPU per task at a fixed rate (full run only).",
            FleetSize.RunAsync),
        ("flood4", "8. Four-lane flood",
            "A backlog of sleep 20 ms tasks on all four lanes at once, 2 consumer processes, default settings: throughput and slot utilization with the gate, without it, and with the rule before 1.0 (Gate:Mode=Strict, a control).",
            Flood4.RunAsync),
        ("cost", "9. Delayed tasks and de-duplication keys: cost",
            "Echo tasks, one consumer: broker CPU, messages stored and deliveries per task for a plain task, a delayed one, one with its own dedup_key, and one answered duplicate.",
            TaskCost.RunAsync),
        ("fairness", "10. Session fairness",
            "Session A's backlog of sleep 20 ms generate tasks runs on a fleet of 2 (8 generate slots) when session B submits 20 more: B's wait and the A tasks that start before B's last, with 8 session shards and without, and the lane's throughput with and without B (only with --only fairness).",
            Fairness.RunAsync),
    ];
}
