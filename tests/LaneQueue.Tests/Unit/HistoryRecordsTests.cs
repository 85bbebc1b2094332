using System.Text;
using LaneQueue.Producer;
using RabbitMQ.Client;

namespace LaneQueue.Tests.Unit;

/// <summary>
/// How the task history stream's messages are read: single results and events (older consumers wrote every event so),
/// batches of events (<c>lanequeue.history.batch</c>), single events whose copy is stored elsewhere (skipped), and a
/// <c>command.completed</c> event shown for a <c>completed</c> result that has none.
/// </summary>
public class HistoryRecordsTests
{
    static List<string> Records(string body, IDictionary<string, object?>? headers = null)
    {
        var found = new List<string>();
        HistoryStream.ForEachRecord(Encoding.UTF8.GetBytes(body), new BasicProperties { Headers = headers }, r => found.Add(r.GetRawText()));
        return found;
    }

    [Fact]
    public void A_batch_gives_each_event_and_a_single_message_itself()
    {
        Assert.Equal(["""{"event":"command.started","task_id":"a"}""", """{"event":"command.failed","task_id":"b"}"""],
            Records("""{"events":[{"event":"command.started","task_id":"a"},{"event":"command.failed","task_id":"b"}]}"""));
        Assert.Equal(["""{"task_id":"a","status":"completed"}"""], Records("""{"task_id":"a","status":"completed"}"""));
        Assert.Equal(["""{"event":"command.completed","task_id":"a"}"""], Records("""{"event":"command.completed","task_id":"a"}"""));
        Assert.Empty(Records("not json"));
        Assert.Empty(Records(""));
    }

    [Fact]
    public void A_single_event_whose_history_copy_is_stored_elsewhere_is_skipped()
    {
        Assert.Empty(Records("""{"event":"command.started","task_id":"a"}""", new Dictionary<string, object?> { [BrokerNames.HistoryCopyHeader] = "batch"u8.ToArray() }));
        Assert.Empty(Records("""{"event":"command.completed","task_id":"a"}""", new Dictionary<string, object?> { [BrokerNames.HistoryCopyHeader] = "result"u8.ToArray() }));
    }

    static readonly DateTimeOffset T0 = new(2026, 1, 31, 12, 0, 0, TimeSpan.Zero);

    static TaskEvent Event(string name, int attempt, double seconds) =>
        new() { Event = name, TaskId = "t", Lane = SessionLane.Query, Consumer = "c1", Attempt = attempt, At = T0.AddSeconds(seconds) };

    static ExternalTaskResult Result(string status, int attempts, double seconds, string consumer = "c1") => new()
    {
        TaskId = "t", Lane = SessionLane.Query, Status = status, Success = status == TaskStatuses.Completed, Consumer = consumer,
        StartedAt = T0, FinishedAt = T0.AddSeconds(seconds), Attempts = attempts,
    };

    [Fact]
    public void A_completed_result_without_its_event_gets_one_placed_by_time()
    {
        // Retried, then completed; the second start's batch reached the stream after the result.
        var events = TaskHistoryReader.WithCompletedEvents(
            [Event(TaskEvent.Started, 1, 1), Event(TaskEvent.Failed, 1, 2), Event(TaskEvent.Retry, 2, 2.1), Event(TaskEvent.Started, 2, 3)],
            [Result(TaskStatuses.Completed, 2, 4)]);
        Assert.Equal([TaskEvent.Started, TaskEvent.Failed, TaskEvent.Retry, TaskEvent.Started, TaskEvent.Completed], events.Select(e => e.Event));
        var completed = events[^1];
        Assert.Equal((2, "c1", T0.AddSeconds(4), SessionLane.Query), (completed.Attempt, completed.Consumer, completed.At, completed.Lane));

        // A later copy answered duplicate stays after it.
        events = TaskHistoryReader.WithCompletedEvents(
            [Event(TaskEvent.Started, 1, 1), Event(TaskEvent.Duplicate, 1, 9)], [Result(TaskStatuses.Completed, 1, 2), Result(TaskStatuses.Duplicate, 1, 9)]);
        Assert.Equal([TaskEvent.Started, TaskEvent.Completed, TaskEvent.Duplicate], events.Select(e => e.Event));
    }

    [Fact]
    public void An_older_consumers_completed_event_is_not_shown_twice_and_other_ends_get_none()
    {
        var events = TaskHistoryReader.WithCompletedEvents([Event(TaskEvent.Started, 1, 1), Event(TaskEvent.Completed, 1, 2)], [Result(TaskStatuses.Completed, 1, 2)]);
        Assert.Equal([TaskEvent.Started, TaskEvent.Completed], events.Select(e => e.Event));
        events = TaskHistoryReader.WithCompletedEvents([Event(TaskEvent.Started, 1, 1), Event(TaskEvent.Cancelled, 1, 2)], [Result(TaskStatuses.Cancelled, 1, 2)]);
        Assert.Equal([TaskEvent.Started, TaskEvent.Cancelled], events.Select(e => e.Event));
    }
}
