"""The client against a real broker and a running LaneQueue consumer fleet (see conftest.py for what it needs).

Expected fleet: consumers with the built-in handlers (echo, sleep, fail), the default retry policy, lane ``execute`` in
External mode, and ``LaneQueue:FleetDeduplication`` on (tests/LaneQueue.Tests/Integration/PythonClientTests.cs).
"""

from __future__ import annotations

import asyncio
from typing import Dict, List, Set
from urllib.parse import unquote, urlsplit

import pytest

from conftest import Management, run_async, unique
from lanequeue import (
    InvalidTaskError,
    LaneQueue,
    LaneQueueError,
    ResultTimeoutError,
    Status,
    TaskEvent,
    TaskRejectedError,
    TaskResult,
)

WAIT = 30.0


async def _started(events: "asyncio.Queue[TaskEvent]", ids: Set[str]) -> None:
    """Waits until each of ``ids`` has a command.started event."""
    waiting = set(ids)
    while waiting:
        event = await events.get()
        if event.event == "command.started":
            waiting.discard(event.task_id)


async def _collect(client: LaneQueue, pattern: str = "command.#") -> "tuple[asyncio.Queue[TaskEvent], object]":
    queue: "asyncio.Queue[TaskEvent]" = asyncio.Queue()

    async def on_event(event: TaskEvent) -> None:
        queue.put_nowait(event)

    return queue, await client.on_events(on_event, pattern)


@run_async
async def test_submit_and_wait_returns_the_completed_result_of_the_echo_handler(broker_url: str) -> None:
    async with LaneQueue(broker_url) as client:
        session = client.session(unique("s"))
        task_id = unique("echo")
        result = await session.submit_and_wait({"id": task_id, "lane": "query", "payload": {"q": "status", "text": "é€😀", "n": [1, 2]}}, WAIT)
        assert isinstance(result, TaskResult)
        assert (result.task_id, result.status, result.success, result.lane) == (task_id, Status.COMPLETED, True, "query")
        assert result.result == {"q": "status", "text": "é€😀", "n": [1, 2]}
        assert result.error is None and result.attempts == 1 and result.consumer
        assert result.session_id == session.session_id
        assert result.started_at and result.finished_at
        every_field = {"id": unique("every-field"), "lane": "control", "payload": None, "command_type": "echo",
                       "timeout_ms": 5000.0, "created_at": "2026-01-31T13:00:00.1234567+01:00", "preemptible": False}
        result = await session.submit_and_wait(every_field, WAIT)
        assert (result.status, result.result, result.session_id) == (Status.COMPLETED, None, session.session_id)


@run_async
async def test_seed_example_an_urgent_query_overtakes_a_background_generate_task(broker_url: str) -> None:
    """The seed's example: a background generate task (sleep 3 s), then an urgent query; the query's result comes first."""
    async with LaneQueue(broker_url) as client:
        session = client.session(unique("seed"))
        background_id, urgent_id = unique("generate"), unique("query")
        background = await client.watch_result(background_id)
        urgent = await client.watch_result(urgent_id)
        await session.submit_task({"id": background_id, "lane": "generate", "command_type": "sleep", "payload": {"ms": 3000}})
        await session.submit_task({"id": urgent_id, "lane": "query", "payload": {"q": "now"}})
        done, _ = await asyncio.wait({background, urgent}, timeout=WAIT, return_when=asyncio.FIRST_COMPLETED)
        assert urgent in done, "the urgent query's result did not arrive first"
        assert not background.done(), "the background task finished before the urgent query's result arrived"
        assert urgent.result().status == Status.COMPLETED
        generated = await asyncio.wait_for(background, WAIT)
        assert generated.status == Status.COMPLETED and generated.result == {"slept_ms": 3000}
        assert generated.finished_at > urgent.result().finished_at  # type: ignore[operator]


@run_async
async def test_a_failing_handler_gives_a_failed_result_with_its_error_after_the_retries(broker_url: str) -> None:
    async with LaneQueue(broker_url) as client:
        events, stream = await _collect(client, "command.dead_lettered.#")
        task_id = unique("fail")
        result = await client.submit_and_wait({"id": task_id, "lane": "control", "command_type": "fail", "payload": {}}, WAIT)
        assert (result.status, result.success) == (Status.FAILED, False)
        assert result.error == "the fail handler always fails"
        assert result.attempts > 1  # retried per the consumer's retry policy
        event = await asyncio.wait_for(_next_for(events, task_id), WAIT)
        assert event.event == "command.dead_lettered" and event.terminal
        await stream.aclose()  # type: ignore[attr-defined]


async def _next_for(events: "asyncio.Queue[TaskEvent]", task_id: str) -> TaskEvent:
    while True:
        event = await events.get()
        if event.task_id == task_id:
            return event


@run_async
async def test_a_task_that_can_never_succeed_fails_once_with_the_field_named(broker_url: str) -> None:
    async with LaneQueue(broker_url) as client:
        unknown = await client.submit_and_wait({"id": unique("nope"), "lane": "query", "command_type": "nope", "payload": {}}, WAIT)
        assert unknown.status == Status.FAILED and unknown.attempts == 1
        assert unknown.error is not None and unknown.error.startswith("command_type: 'nope' has no handler")
        bad_payload = await client.submit_and_wait({"id": unique("sleep-abc"), "lane": "query", "command_type": "sleep", "payload": {"ms": "abc"}}, WAIT)
        assert bad_payload.status == Status.FAILED and bad_payload.attempts == 1
        assert bad_payload.error is not None and bad_payload.error.startswith("payload: ms must be a whole number")


@run_async
async def test_a_run_past_its_timeout_gives_a_timed_out_result(broker_url: str) -> None:
    async with LaneQueue(broker_url) as client:
        result = await client.submit_and_wait(
            {"id": unique("slow"), "lane": "query", "command_type": "sleep", "payload": {"ms": 10000}, "timeout_ms": 300}, WAIT
        )
        assert (result.status, result.success) == (Status.TIMED_OUT, False)
        assert result.error is not None and "timed out after 300 ms" in result.error


@run_async
async def test_cancel_task_stops_a_running_task_with_a_cancelled_result(broker_url: str) -> None:
    async with LaneQueue(broker_url) as client:
        events, stream = await _collect(client, "command.started.#")
        task_id = unique("cancel-me")
        waiter = await client.watch_result(task_id)
        await client.submit_task({"id": task_id, "lane": "query", "command_type": "sleep", "payload": {"ms": 60000}})
        await asyncio.wait_for(_started(events, {task_id}), WAIT)
        await client.cancel_task(task_id)
        result = await asyncio.wait_for(waiter, WAIT)
        assert (result.status, result.success) == (Status.CANCELLED, False)
        assert result.error == "cancelled while running"
        await stream.aclose()  # type: ignore[attr-defined]


@run_async
async def test_cancel_session_cancels_the_running_and_the_waiting_tasks_of_the_session(broker_url: str) -> None:
    async with LaneQueue(broker_url) as client:
        session = client.session(unique("cancel-session"))
        other = client.session(unique("other-session"))
        events, stream = await _collect(client, "command.started.#")
        running = [unique("run") for _ in range(2)]
        # More generate tasks than the fleet has generate slots (one per consumer): some wait when the session is cancelled.
        waiting = [unique("wait") for _ in range(3)]
        bystander = unique("bystander")
        waiters = {task_id: await client.watch_result(task_id) for task_id in running + waiting + [bystander]}
        for task_id in running:
            await session.submit_task({"id": task_id, "lane": "query", "command_type": "sleep", "payload": {"ms": 60000}})
        await asyncio.wait_for(_started(events, set(running)), WAIT)
        for task_id in waiting:
            await session.submit_task({"id": task_id, "lane": "generate", "command_type": "sleep", "payload": {"ms": 60000}})
        await other.submit_task({"id": bystander, "lane": "query", "command_type": "sleep", "payload": {"ms": 1500}})
        await session.cancel()
        results: Dict[str, TaskResult] = {}
        for task_id, waiter in waiters.items():
            results[task_id] = await asyncio.wait_for(waiter, WAIT)
        for task_id in running + waiting:
            assert results[task_id].status == Status.CANCELLED, results[task_id]
            assert results[task_id].session_id == session.session_id
        assert {results[t].error for t in running} == {"cancelled while running"}
        # Whether a generate task was still waiting or had just been admitted is the fleet's timing; cancelled it is either way.
        assert {results[t].error for t in waiting} <= {"cancelled before it started", "cancelled while running"}
        assert results[bystander].status == Status.COMPLETED, "a task of another session was cancelled"
        await stream.aclose()  # type: ignore[attr-defined]


@run_async
async def test_watch_events_follows_a_task_from_started_to_completed(broker_url: str) -> None:
    async with LaneQueue(broker_url) as client:
        session = client.session(unique("events"))
        task_id = unique("evented")
        seen: List[TaskEvent] = []
        async with client.watch_events("command.#") as events:
            await session.submit_task({"id": task_id, "lane": "control", "payload": {"x": 1}})

            async def follow() -> None:
                async for event in events:
                    if event.task_id == task_id:
                        seen.append(event)
                        if event.terminal:
                            return

            await asyncio.wait_for(follow(), WAIT)
        kinds = [e.event for e in seen]
        assert kinds[0] == "command.started" and kinds[-1] == "command.completed", kinds
        assert all(e.lane == "control" and e.session_id == session.session_id and e.attempt == 1 for e in seen)
        assert seen[0].routing_key == "command.started.control"


@run_async
async def test_an_external_lane_task_is_completed_by_the_python_worker(broker_url: str) -> None:
    async with LaneQueue(broker_url) as client, LaneQueue(broker_url, client_name="python-worker") as worker_client:
        ok_id, failing_id = unique("external-ok"), unique("external-fail")
        taken: List[str] = []

        async def worker() -> None:
            async for task in worker_client.external_tasks("execute"):
                taken.append(task.id)
                if task.id == ok_id:
                    await task.complete({"by": "python", "echo": task.payload, "consumer": task.consumer})
                elif task.id == failing_id:
                    await task.fail("the python worker says no")
                else:
                    await task.release()

        working = asyncio.ensure_future(worker())
        try:
            ok = await client.submit_and_wait({"id": ok_id, "lane": "execute", "payload": {"job": "resize"}}, WAIT)
            assert (ok.status, ok.success) == (Status.COMPLETED, True), ok
            assert ok.result["by"] == "python" and ok.result["echo"] == {"job": "resize"}
            assert ok.result["consumer"] == ok.consumer  # the announcement named the consumer that waits for it
            failed = await client.submit_and_wait({"id": failing_id, "lane": "execute", "payload": {}}, WAIT)
            assert (failed.status, failed.success) == (Status.FAILED, False), failed
            assert failed.error is not None and "the python worker says no" in failed.error
            assert ok_id in taken and failing_id in taken
        finally:
            working.cancel()


@run_async
async def test_an_unroutable_task_is_refused_with_a_clear_error(empty_vhost_url: str) -> None:
    """On a vhost where no consumer ever ran, no lane queue is bound: the mandatory publish comes back."""
    async with LaneQueue(empty_vhost_url) as client:
        with pytest.raises(TaskRejectedError) as refused:
            await client.submit_task({"id": unique("nowhere"), "lane": "query", "payload": {}})
        assert refused.value.unroutable
        assert "was not routed" in str(refused.value) and "lane 'query'" in str(refused.value)
        with pytest.raises(TaskRejectedError, match="not routed"):
            await client.cancel_task("anything")


@run_async
async def test_an_invalid_task_is_refused_before_publishing_with_the_field_named(broker_url: str) -> None:
    async with LaneQueue(broker_url) as client:
        task_id = unique("too-big")
        waiter = await client.watch_result(task_id)
        cases = [
            ({"id": "a b", "lane": "query", "payload": {}}, "id"),
            ({"id": unique("bad-lane"), "lane": "Query", "payload": {}}, "lane"),
            ({"id": task_id, "lane": "query", "payload": "x" * (1024 * 1024)}, "payload"),
            ({"id": unique("bad-timeout"), "lane": "query", "payload": {}, "timeout_ms": 0}, "timeout_ms"),
            ({"id": unique("no-payload"), "lane": "query"}, "payload"),
        ]
        for task, field in cases:
            with pytest.raises(InvalidTaskError) as refused:
                await client.submit_task(task)
            assert refused.value.field == field and str(refused.value).startswith(field + ": ")
        with pytest.raises(InvalidTaskError) as refused:
            await client.submit_and_wait({"id": unique("bad"), "lane": "query", "payload": {"s": "\ud800"}}, 5)
        assert refused.value.field == "payload"
        # Nothing went out: a published over-limit payload would have been answered with a failed result.
        done, _ = await asyncio.wait({waiter}, timeout=3)
        assert not done, "the refused task reached a consumer"
        waiter.cancel()


@run_async
async def test_submit_and_wait_times_out_when_no_result_comes(broker_url: str) -> None:
    async with LaneQueue(broker_url) as client:
        task_id = unique("late")
        with pytest.raises(ResultTimeoutError) as timed_out:
            await client.submit_and_wait({"id": task_id, "lane": "query", "command_type": "sleep", "payload": {"ms": 3000}}, 0.5)
        assert isinstance(timed_out.value, TimeoutError) and task_id in str(timed_out.value)
        await client.cancel_task(task_id)


@run_async
async def test_watching_an_id_again_right_after_a_wait_ended_still_gets_its_result(broker_url: str) -> None:
    async with LaneQueue(broker_url) as client:
        task_id = unique("again")
        first = await client.watch_result(task_id)
        first.cancel()  # its unbind must not take the next wait's binding with it
        second = await client.watch_result(task_id)
        await client.submit_task({"id": task_id, "lane": "control", "payload": {}})
        assert (await asyncio.wait_for(second, WAIT)).status == Status.COMPLETED
        pending_id = unique("pending")
        pending = await client.watch_result(pending_id)
        with pytest.raises(LaneQueueError, match="already waiting"):
            await client.watch_result(pending_id)
        pending.cancel()


@run_async
async def test_a_second_copy_of_a_completed_id_is_answered_duplicate(broker_url: str) -> None:
    async with LaneQueue(broker_url) as client:
        task = {"id": unique("twice"), "lane": "query", "payload": {"n": 1}}
        first = await client.submit_and_wait(task, WAIT)
        assert first.status == Status.COMPLETED
        await asyncio.sleep(1.0)  # the fleet learns of the completion from its events
        second = await client.submit_and_wait(task, WAIT)
        assert (second.status, second.success) == (Status.DUPLICATE, False), second
        assert second.error is not None and "not run twice" in second.error


@run_async
async def test_a_cluster_url_connects_to_the_first_node_that_answers(broker_url: str) -> None:
    parts = urlsplit(broker_url)
    userinfo = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    hosts = f"127.0.0.1:1,{parts.hostname}:{parts.port or 5672}"
    cluster_url = parts._replace(netloc=userinfo + hosts).geturl()
    async with LaneQueue(cluster_url) as client:
        result = await client.submit_and_wait({"id": unique("cluster"), "lane": "control", "payload": {}}, WAIT)
        assert result.status == Status.COMPLETED
    with pytest.raises(TaskRejectedError, match="cannot reach RabbitMQ"):
        await LaneQueue.connect(parts._replace(netloc=userinfo + "127.0.0.1:1").geturl())


@run_async
async def test_the_client_carries_on_when_an_operator_closes_its_connection(broker_url: str, management: Management) -> None:
    """aio-pika's robust connection comes back; a submit meanwhile waits for it (as the .NET producer's recovery does)."""
    name = unique("py-connection")
    vhost = unquote(urlsplit(broker_url).path[1:]) or "/"
    async with LaneQueue(broker_url, client_name=name) as client:
        before = await client.submit_and_wait({"id": unique("before"), "lane": "control", "payload": {}}, WAIT)
        assert before.status == Status.COMPLETED
        closed = await asyncio.get_running_loop().run_in_executor(None, management.close_connections, vhost, name)
        assert closed == 1
        after = await client.submit_and_wait({"id": unique("after"), "lane": "control", "payload": {"n": 2}}, WAIT)
        assert (after.status, after.result) == (Status.COMPLETED, {"n": 2})


# -- following one task, session interrupts --------------------------------------------------------------------------------


def _progress_of(events: "List[TaskEvent]") -> "List[float]":
    """The percents of the command.progress events, in the order they were handed on (each must carry one)."""
    reports = [e for e in events if e.event == "command.progress"]
    assert all(e.percent is not None for e in reports), f"a progress event without a percent: {reports}"
    return [e.percent for e in reports]  # type: ignore[misc]


@run_async
async def test_watch_task_hands_on_the_progress_of_a_one_second_sleep_in_order_then_its_completed_result(broker_url: str) -> None:
    """The built-in sleep reports progress from 500 ms on, every 100 ms at most: the watcher sees them rising to 100."""
    async with LaneQueue(broker_url) as client:
        task_id = unique("progress")
        events: List[TaskEvent] = []
        watching = asyncio.ensure_future(client.watch_task(task_id, events.append, WAIT))
        await asyncio.sleep(0.2)  # the watch subscribes; what it would miss, its history read finds
        await client.submit_task({"id": task_id, "lane": "query", "command_type": "sleep", "payload": {"ms": 1000}})
        result = await watching
        assert (result.task_id, result.status) == (task_id, Status.COMPLETED)
        assert result.result == {"slept_ms": 1000}
        names = [e.event for e in events]
        assert names[0] == "command.started" and names[-1] == "command.completed", names
        assert set(names[1:-1]) == {"command.progress"}, names
        percents = _progress_of(events)
        assert len(percents) >= 3, f"too few progress reports for a 1 s sleep: {percents}"
        assert percents == sorted(set(percents)), f"progress did not rise in order: {percents}"
        assert percents[-1] >= 99, f"the last progress report is {percents[-1]}, not (near) 100"
        last = [e for e in events if e.event == "command.progress"][-1]
        assert last.progress["message"] == "slept 1000 of 1000 ms"
        assert all(e.task_id == task_id and e.lane == "query" for e in events)


@run_async
async def test_watch_task_of_a_task_that_already_finished_returns_its_result_after_its_history(broker_url: str) -> None:
    async with LaneQueue(broker_url) as client:
        task_id = unique("finished")
        done = await client.submit_and_wait({"id": task_id, "lane": "query", "command_type": "sleep", "payload": {"ms": 600}}, WAIT)
        assert done.status == Status.COMPLETED
        events: List[TaskEvent] = []

        async def on_event(event: TaskEvent) -> None:  # an async callback works too
            events.append(event)

        result = await client.watch_task(task_id, on_event, WAIT)
        assert (result.task_id, result.status, result.finished_at) == (task_id, Status.COMPLETED, done.finished_at)
        names = [e.event for e in events]
        assert names[0] == "command.started" and names[-1] == "command.completed", names
        percents = _progress_of(events)
        assert percents and percents == sorted(set(percents)) and percents[-1] >= 99, percents
        # Without the history the watch starts now: nothing more comes for it.
        with pytest.raises(ResultTimeoutError):
            await client.watch_task(task_id, on_event, 2, look_back=0)


@run_async
async def test_interrupt_session_makes_its_running_preemptible_sleep_yield_resume_and_complete_once(broker_url: str) -> None:
    async with LaneQueue(broker_url) as client:
        session = client.session(unique("interrupted"))
        task_id = unique("preemptible")
        events: List[TaskEvent] = []
        started = asyncio.Event()

        def on_event(event: TaskEvent) -> None:
            events.append(event)
            if event.event == "command.progress" and (event.percent or 0) >= 15:
                started.set()  # 600 ms slept: the checkpoint says how much

        watching = asyncio.ensure_future(client.watch_task(task_id, on_event, WAIT))
        await asyncio.sleep(0.2)
        await session.submit_task({"id": task_id, "lane": "generate", "command_type": "sleep", "payload": {"ms": 4000}, "preemptible": True})
        await asyncio.wait_for(started.wait(), WAIT)
        interrupt_id = await session.interrupt(timeout=WAIT)
        assert interrupt_id.startswith("lanequeue.interrupt-")
        result = await watching
        assert result.status == Status.COMPLETED, result
        assert 500 <= result.result.get("resumed_from_ms", -1) <= 3999, f"not resumed from its checkpoint: {result.result}"
        names = [e.event for e in events]
        assert names.count("command.preempted") == 1, names
        assert names.count("command.started") == 2, names
        assert names.count("command.completed") == 1 and names[-1] == "command.completed", names
        assert names.index("command.preempted") < len(names) - 1 - names[::-1].index("command.started"), names


@run_async
async def test_interrupt_session_with_cancel_cancels_its_running_task(broker_url: str) -> None:
    async with LaneQueue(broker_url) as client:
        session_id = unique("interrupt-cancel")
        task_id = unique("long")
        events, stream = await _collect(client, "command.started.#")
        try:
            waiter = await client.watch_result(task_id)
            await client.submit_task({"id": task_id, "lane": "generate", "command_type": "sleep", "payload": {"ms": 20000},
                                      "preemptible": True, "session_id": session_id})
            await asyncio.wait_for(_started(events, {task_id}), WAIT)
            interrupt_id = await client.interrupt_session(session_id, cancel=True)
            result = await asyncio.wait_for(waiter, WAIT)
            assert result.status == Status.CANCELLED, result
            # The interrupt task itself, on the control lane, completed with the mode it sent.
            interrupt = await client.watch_task(interrupt_id, lambda _: None, WAIT)
            assert interrupt.status == Status.COMPLETED and interrupt.result == {"interrupted": session_id, "mode": "cancel"}
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
