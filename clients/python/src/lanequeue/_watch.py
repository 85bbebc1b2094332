"""Following one task to its end, as the .NET ``TaskWatch.WatchTaskAsync`` (src/Producer/TaskWatch.cs) does."""

from __future__ import annotations

import asyncio
import inspect
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Optional, Set, Tuple, Union

from ._errors import ResultTimeoutError
from ._history import read_task_history

if TYPE_CHECKING:
    from ._client import LaneQueue, TaskEvent, TaskResult

OnEvent = Callable[["TaskEvent"], Union[None, Awaitable[None]]]

# Once the result is in, how long to wait for the events published before it (they travel on another channel).
AFTER_RESULT = 0.5


def _key(event: "TaskEvent") -> Tuple[str, int, Optional[str], Optional[str]]:
    """What makes an event the same one seen twice (in the history and live)."""
    return (event.event, event.attempt, event.at, event.consumer)


async def watch_task(
    client: "LaneQueue", task_id: str, on_event: OnEvent, timeout: float, look_back: Optional[float]
) -> "TaskResult":
    """See ``LaneQueue.watch_task``."""
    # Listen first (events and result), then read the history: whatever happens in between is caught by one or the other.
    result = await client.watch_result(task_id)
    live: "asyncio.Queue[TaskEvent]" = asyncio.Queue()

    async def on_live(event: "TaskEvent") -> None:
        if event.task_id == task_id:
            live.put_nowait(event)

    stream = None
    try:
        stream = await client.on_events(on_live, "command.#")
        return await _follow(client, task_id, on_event, timeout, look_back, result, live)
    finally:
        if stream is not None:
            await stream.aclose()
        if not result.done():
            result.cancel()  # stops listening (unbinds)


async def _follow(
    client: "LaneQueue", task_id: str, on_event: OnEvent, timeout: float, look_back: Optional[float],
    result: "asyncio.Future[TaskResult]", live: "asyncio.Queue[TaskEvent]",
) -> "TaskResult":
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    seen: Set[Tuple[str, int, Optional[str], Optional[str]]] = set()

    def expired() -> ResultTimeoutError:
        return ResultTimeoutError(f"no result for task '{task_id}' within {timeout:g} s; it may still run")

    async def hand(event: "TaskEvent") -> bool:
        """Hands on an event not seen yet; True when it ends the task."""
        if _key(event) in seen:
            return False
        seen.add(_key(event))
        outcome: Any = on_event(event)
        if inspect.isawaitable(outcome):
            await outcome
        return event.terminal

    if look_back != 0:
        try:
            history = await read_task_history(client, task_id, look_back, max(0.0, deadline - loop.time()))
        except asyncio.TimeoutError:
            raise expired() from None
        for event in history.events:
            await hand(event)
        if history.final is not None:
            return history.final

    ended = False
    while not ended and not result.done():
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise expired()
        getter = asyncio.ensure_future(live.get())
        done, _ = await asyncio.wait({getter, result}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        if getter in done:
            ended = await hand(getter.result())
        else:
            getter.cancel()
    if not result.done():  # the terminal event came first: its result is on its way
        try:
            await asyncio.wait_for(asyncio.shield(result), max(0.0, deadline - loop.time()))
        except asyncio.TimeoutError:
            raise expired() from None
    final = result.result()
    # The result came first: give the events published before it a moment (none may come: the result stands for the end).
    grace = loop.time() + AFTER_RESULT
    while not ended:
        if not live.empty():  # a backlog is handed on whole, whatever the time
            event = live.get_nowait()
        else:
            try:
                event = await asyncio.wait_for(live.get(), max(0.0, grace - loop.time()))
            except asyncio.TimeoutError:
                break
        ended = await hand(event)
    return final

