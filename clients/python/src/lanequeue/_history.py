"""One task's history, read from the stream ``lanequeue.history`` (wire contract §6.3, *Events in the task history*).

As the .NET ``HistoryStream`` / ``TaskHistoryReader``: a stream consumer from an ``x-stream-offset`` (``first``, or a time
for a look-back) reads up to a marker this reader appends itself (default exchange, routing key = the stream, header
``x-lanequeue-history-marker``), so the end is known without guessing at a quiet spell.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import json
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional

import aio_pika
import aiormq.exceptions
from aio_pika.abc import AbstractIncomingMessage

from ._errors import LaneQueueError

if TYPE_CHECKING:
    from ._client import LaneQueue, TaskEvent, TaskResult

HISTORY_STREAM = "lanequeue.history"
MARKER_HEADER = "x-lanequeue-history-marker"
# A single event whose history copy is stored another way (in a batch, or as its result): not read twice.
COPY_HEADER = "x-lanequeue-history"


@dataclass
class TaskHistory:
    """What the history holds about one task: its events in order and its results (normally one)."""

    task_id: str
    events: List["TaskEvent"] = field(default_factory=list)
    results: List["TaskResult"] = field(default_factory=list)

    @property
    def final(self) -> Optional["TaskResult"]:
        """The result that ended the task: the last that is not ``duplicate``, else the last one; None while none."""
        for result in reversed(self.results):
            if result.status != "duplicate":
                return result
        return self.results[-1] if self.results else None


def _text(value: Any) -> Optional[str]:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value if isinstance(value, str) else None


def _records(body: bytes, headers: Mapping[str, Any]) -> List[Mapping[str, Any]]:
    """The results and events one stream message holds: itself, or each event of a batch (``{"events": [...]}``)."""
    if COPY_HEADER in headers:
        return []
    try:
        root = json.loads(body)
    except ValueError:
        return []
    if not isinstance(root, dict):
        return []
    if "task_id" not in root and isinstance(root.get("events"), list):
        return [item for item in root["events"] if isinstance(item, dict)]
    return [root]


def _time(text: Optional[str]) -> Optional[_dt.datetime]:
    from ._client import _timestamp

    try:
        return _timestamp(text) if isinstance(text, str) else None
    except (AssertionError, ValueError):
        return None


def _with_completed_events(history: TaskHistory) -> None:
    """Adds a ``command.completed`` for each ``completed`` result without one (consumers do not store that event: the
    result stands for it), before the first later event that is not a progress report of the same attempt (as .NET)."""
    from ._client import TaskEvent

    for result in history.results:
        if result.status != "completed" or any(
            e.event == "command.completed" and e.attempt == result.attempts and e.consumer == result.consumer for e in history.events
        ):
            continue
        completed = TaskEvent(
            event="command.completed", task_id=result.task_id, lane=result.lane, session_id=result.session_id,
            consumer=result.consumer, attempt=result.attempts, at=result.finished_at,
        )
        finished = _time(result.finished_at)
        at = len(history.events)
        for index, event in enumerate(history.events):
            when = _time(event.at)
            if finished is not None and when is not None and when > finished \
                    and not (event.event == "command.progress" and event.attempt == result.attempts):
                at = index
                break
        history.events.insert(at, completed)


async def read_task_history(client: "LaneQueue", task_id: str, look_back: Optional[float], timeout: float) -> TaskHistory:
    """Reads the history stream from ``look_back`` seconds ago (None: its first message) to its end for ``task_id``.

    :raises LaneQueueError: the stream is missing (no consumer of this version ran on the vhost) or this user may not read
        it or append the marker.
    :raises asyncio.TimeoutError: the end was not reached within ``timeout`` seconds.
    """
    from ._client import TaskEvent, TaskResult

    connection = client._require()
    history = TaskHistory(task_id)
    marker = uuid.uuid4().hex
    reached_end: "asyncio.Future[None]" = asyncio.get_running_loop().create_future()
    channel = await connection.channel(publisher_confirms=False)
    try:
        await channel.set_qos(prefetch_count=1000)  # a stream consumer needs a prefetch and acks
        try:
            stream = await channel.get_queue(HISTORY_STREAM, ensure=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            raise LaneQueueError(
                f"the history stream '{HISTORY_STREAM}' does not exist on this vhost: start a consumer of LaneQueue 1.1 or later (it declares it)"
            ) from None

        async def on_message(message: AbstractIncomingMessage) -> None:
            if reached_end.done():
                return
            headers = message.headers or {}
            is_marker = _text(headers.get(MARKER_HEADER)) == marker
            if not is_marker and message.body:
                for record in _records(message.body, headers):
                    if record.get("task_id") != task_id:
                        continue
                    try:
                        if "event" in record:
                            history.events.append(TaskEvent.from_json(record))
                        elif "status" in record:
                            history.results.append(TaskResult.from_json(record))
                    except (KeyError, TypeError, ValueError):
                        pass  # not one of ours
            # Acked before the end is signalled: nothing may follow the channel's close.
            await message.ack()
            if is_marker and not reached_end.done():
                reached_end.set_result(None)

        offset: Any = "first"
        if look_back is not None:
            offset = _dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(seconds=look_back)
        await stream.consume(on_message, no_ack=False, arguments={"x-stream-offset": offset})
        await channel.default_exchange.publish(aio_pika.Message(b"", headers={MARKER_HEADER: marker}), routing_key=HISTORY_STREAM)
        await asyncio.wait_for(asyncio.shield(reached_end), timeout)
    except aiormq.exceptions.ChannelAccessRefused as ex:
        raise LaneQueueError(
            f"this user may not read the history stream '{HISTORY_STREAM}' or append its end marker to it ({ex}): grant read and "
            "write on it, or watch without the history (look_back=0)"
        ) from None
    finally:
        if not channel.is_closed:
            await channel.close()
    _with_completed_events(history)
    return history
