"""The LaneQueue client: submit tasks, wait for their results, cancel them, follow events, work External lanes.

It speaks the wire contract (docs/wire-contract.md) the way the .NET producer (``LaneQueueProducer``) does: the same
exchanges, routing keys, properties and headers, publisher confirms and ``mandatory`` on every publish.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import json
import logging
import re
import uuid
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, AsyncIterator, Awaitable, Callable, Dict, List, Mapping, Optional, Set, Type, TypeVar, Union

import aio_pika
import aiormq.exceptions
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection
from yarl import URL

from ._address import BrokerAddress, redact, url_from_environment
from ._errors import InvalidTaskError, LaneQueueError, ResultTimeoutError, TaskRejectedError
from ._shards import MAX_SHARDS, routing_key as _routing_key
from ._validation import DEFAULT_MAX_PAYLOAD_BYTES, LANES, encode_task, parse_task
from ._watch import watch_task as _watch_task

__all__ = [
    "ExternalTask",
    "ExternalTaskStream",
    "LaneQueue",
    "Names",
    "Session",
    "Status",
    "TaskEvent",
    "TaskEventStream",
    "TaskResult",
]

log = logging.getLogger("lanequeue")
_T = TypeVar("_T")
# The connection (not the broker's verdict) failed: worth waiting for aio-pika's recovery and trying again.
_CONNECTION_FAILURES = (
    aiormq.exceptions.ChannelInvalidStateError,
    aiormq.exceptions.AMQPConnectionError,
    ConnectionError,
)


class Names:
    """Every broker name the client uses (``src/Contracts/BrokerNames.cs``)."""

    TASKS_EXCHANGE = "lanequeue.tasks"
    RESULTS_EXCHANGE = "lanequeue.results"
    EVENTS_EXCHANGE = "lanequeue.events"
    FLEET_EXCHANGE = "lanequeue.fleet"
    EXTERNAL_EXCHANGE = "lanequeue.external"
    EXTERNAL_COMPLETIONS_EXCHANGE = "lanequeue.external.completions"

    @staticmethod
    def external_queue(lane: str) -> str:
        """The durable queue of a lane's External work, e.g. ``lanequeue.external.execute``."""
        return f"{Names.EXTERNAL_EXCHANGE}.{lane}"

    @staticmethod
    def lane_queue(lane: str) -> str:
        return f"lanequeue.{lane}"


class Status:
    """The result statuses of the wire contract (§6.2)."""

    COMPLETED = "completed"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    DUPLICATE = "duplicate"
    ALL = (COMPLETED, FAILED, TIMED_OUT, CANCELLED, DUPLICATE)


def _priority(lane: str) -> int:
    """RabbitMQ message priority of a lane: control 3, query 2, execute 1, generate 0."""
    return len(LANES) - 1 - LANES.index(lane)


def _timestamp(created_at: str) -> _dt.datetime:
    """An RFC 3339 ``created_at`` (already checked) as a datetime, for the AMQP timestamp (whole seconds on the wire)."""
    match = re.fullmatch(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|([+-])(\d{2}):(\d{2}))", created_at)
    assert match is not None
    zone = _dt.timezone.utc
    if match.group(3) != "Z":
        offset = _dt.timedelta(hours=int(match.group(5)), minutes=int(match.group(6)))
        zone = _dt.timezone(-offset if match.group(4) == "-" else offset)
    at = _dt.datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=zone)
    return at.replace(microsecond=int((match.group(2) or "0")[:6].ljust(6, "0")))


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class TaskResult:
    """A task's result as published on ``lanequeue.results`` (wire contract §6.1)."""

    task_id: str
    status: str
    success: bool
    lane: Optional[str] = None
    result: Any = None
    error: Optional[str] = None
    session_id: Optional[str] = None
    consumer: Optional[str] = None
    started_at: Optional[str] = None
    finished_at: Optional[str] = None
    attempts: int = 0
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "TaskResult":
        return cls(
            task_id=data["task_id"],
            status=data.get("status", Status.COMPLETED),
            success=bool(data.get("success", False)),
            lane=data.get("lane"),
            result=data.get("result", {}),
            error=data.get("error"),
            session_id=data.get("session_id"),
            consumer=data.get("consumer"),
            started_at=data.get("started_at"),
            finished_at=data.get("finished_at"),
            attempts=int(data.get("attempts", 0)),
            raw=dict(data),
        )

    @property
    def completed(self) -> bool:
        return self.status == Status.COMPLETED


@dataclass(frozen=True)
class TaskEvent:
    """A lifecycle event from ``lanequeue.events`` (wire contract §6.3), e.g. ``command.started``.

    ``progress`` is what a running handler reported, on ``command.progress`` events (any JSON, usually
    ``{"percent": 40, "message": "..."}``); None on the others.
    """

    event: str
    task_id: str
    lane: Optional[str] = None
    session_id: Optional[str] = None
    consumer: Optional[str] = None
    attempt: int = 0
    at: Optional[str] = None
    error: Optional[str] = None
    delay_ms: Optional[int] = None
    payload_bytes: Optional[int] = None
    payload: Any = None
    progress: Any = None
    routing_key: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], routing_key: str = "") -> "TaskEvent":
        """An event's JSON as published (``event`` and ``task_id`` required: ``lane.pressure`` and the like raise KeyError)."""
        return cls(
            event=data["event"],
            task_id=data["task_id"],
            lane=data.get("lane"),
            session_id=data.get("session_id"),
            consumer=data.get("consumer"),
            attempt=int(data.get("attempt", 0)),
            at=data.get("at"),
            error=data.get("error"),
            delay_ms=data.get("delay_ms"),
            payload_bytes=data.get("payload_bytes"),
            payload=data.get("payload"),
            progress=data.get("progress"),
            routing_key=routing_key,
            raw=dict(data),
        )

    @property
    def percent(self) -> Optional[float]:
        """``progress["percent"]`` when the progress is an object with a number there (the built-in handlers' form), else None."""
        value = self.progress.get("percent") if isinstance(self.progress, Mapping) else None
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    @property
    def terminal(self) -> bool:
        """Whether the event comes with the task's result."""
        return self.event in ("command.completed", "command.dead_lettered", "command.cancelled", "command.duplicate")


class LaneQueue:
    """A connection to LaneQueue's broker.

    ``async with LaneQueue(url) as client:`` or ``client = await LaneQueue.connect(url)`` (then ``await client.close()``).
    The URL defaults to ``LANEQUEUE_RABBITMQ_URL``, else ``amqp://guest:guest@localhost:5672/lanequeue``; it may be
    ``amqps://`` with TLS options and list several cluster nodes (``amqp://u:p@node1,node2:5673/vhost``).
    """

    def __init__(
        self,
        url: Optional[str] = None,
        *,
        client_name: str = "lanequeue-python",
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        publish_timeout: float = 30.0,
        session_shards: Optional[Mapping[str, int]] = None,
    ) -> None:
        """``session_shards``: per lane, its session shard count as the consumers have it (``LaneQueue:SessionShards``),
        e.g. ``{"generate": 8}``: a task with a session_id then goes to its session's shard (wire contract §2)."""
        for lane, shards in (session_shards or {}).items():
            if lane not in LANES or not isinstance(shards, int) or not 0 <= shards <= MAX_SHARDS:
                raise ValueError(f"session_shards: {lane!r}: {shards!r} must be a lane and a whole number from 0 to {MAX_SHARDS}")
        self.session_shards = dict(session_shards or {})
        self.url = url or url_from_environment()
        self.address = BrokerAddress.parse(self.url)
        self.client_name = client_name
        self.max_payload_bytes = max_payload_bytes
        self.publish_timeout = publish_timeout
        self._connection: Optional[AbstractRobustConnection] = None
        self._publisher: Optional[AbstractChannel] = None
        self._reply_channel: Optional[AbstractChannel] = None
        self._reply_queue: Optional[AbstractQueue] = None
        self._reply_lock: Optional[asyncio.Lock] = None  # made in open(): inside the event loop (Python 3.9 binds it at creation)
        self._waiting: Dict[str, "asyncio.Future[TaskResult]"] = {}
        self._unbinding: Dict[str, "asyncio.Future[None]"] = {}
        self._streams: Set[Any] = set()

    # -- connection ---------------------------------------------------------------------------------------------------

    @classmethod
    async def connect(cls, url: Optional[str] = None, **options: Any) -> "LaneQueue":
        """Connects (see the class) and returns the open client."""
        client = cls(url, **options)
        await client.open()
        return client

    async def __aenter__(self) -> "LaneQueue":
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Connects to the first broker node that answers and declares the exchanges producers share (idempotent)."""
        if self._connection is not None:
            return
        self._reply_lock = asyncio.Lock()
        failures = []
        for host, port in self.address.hosts:
            url = URL.build(
                scheme=self.address.scheme,
                host=host,
                port=port,
                user=self.address.user or "guest",
                password=self.address.password if self.address.password is not None else "guest",
                path="/" + self.address.vhost,
                query={"heartbeat": str(self.address.heartbeat), "reconnect_interval": "2", "name": self.client_name},
            )
            try:
                self._connection = await aio_pika.connect_robust(
                    url,
                    ssl_context=self.address.ssl_context(host),
                    timeout=self.address.connection_timeout,
                    client_properties={"connection_name": self.client_name},
                )
                break
            except (OSError, asyncio.TimeoutError, aiormq.exceptions.AMQPError, ConnectionError) as ex:
                failures.append(f"{host}:{port}: {ex!r}")
        if self._connection is None:
            raise TaskRejectedError(f"cannot reach RabbitMQ at {redact(self.url)}: {'; '.join(failures)}")
        try:
            await self._declare_exchanges()
            self._publisher = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        except BaseException:
            await self._connection.close()
            self._connection = None
            raise

    async def _declare_exchanges(self) -> None:
        """Declares the exchanges the client publishes to, as every consumer does; a user that may not declare checks they exist."""
        exchanges = [
            (Names.TASKS_EXCHANGE, aio_pika.ExchangeType.DIRECT),
            (Names.RESULTS_EXCHANGE, aio_pika.ExchangeType.TOPIC),
            (Names.EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC),
            (Names.FLEET_EXCHANGE, aio_pika.ExchangeType.FANOUT),
            (Names.EXTERNAL_EXCHANGE, aio_pika.ExchangeType.TOPIC),
            (Names.EXTERNAL_COMPLETIONS_EXCHANGE, aio_pika.ExchangeType.DIRECT),
        ]
        assert self._connection is not None
        channel = await self._connection.channel(publisher_confirms=False)
        try:
            for name, kind in exchanges:
                await channel.declare_exchange(name, kind, durable=True)
        except aiormq.exceptions.ChannelAccessRefused:
            for name, _ in exchanges:
                check = await self._connection.channel(publisher_confirms=False)
                try:
                    await check.declare_exchange(name, passive=True)
                except aiormq.exceptions.ChannelNotFoundEntity:
                    raise TaskRejectedError(
                        f"the exchange '{name}' does not exist on the broker and this user may not declare it: "
                        "start a consumer first (it declares them)"
                    ) from None
                finally:
                    if not check.is_closed:
                        await check.close()
        finally:
            if not channel.is_closed:
                await channel.close()

    async def close(self) -> None:
        """Stops every stream, result wait and worker of this client and closes the connection."""
        for stream in list(self._streams):
            await stream.aclose()
        for waiter in list(self._waiting.values()):
            waiter.cancel()
        self._waiting.clear()
        if self._connection is not None:
            connection, self._connection = self._connection, None
            await connection.close()
        self._publisher = self._reply_channel = None
        self._reply_queue = None

    def _require(self) -> AbstractRobustConnection:
        if self._connection is None:
            raise LaneQueueError("the client is not connected: use 'async with LaneQueue(url)' or 'await LaneQueue.connect(url)'")
        return self._connection

    # -- publishing ---------------------------------------------------------------------------------------------------

    async def _when_connected(self, operation: Callable[[], Awaitable[_T]], what: str) -> _T:
        """Runs ``operation``; while the connection is lost (aio-pika's robust connection recovers it), waits for it and runs
        it again, for up to ``publish_timeout`` seconds in all (as the .NET producer's recovery time-out)."""
        connection = self._require()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.publish_timeout
        while True:
            try:
                try:
                    return await operation()
                except asyncio.CancelledError as cancelled:
                    # aiormq cancels what was in flight when the connection closed; a cancellation of this task is not that.
                    task = asyncio.current_task()
                    if task is None or getattr(task, "cancelling", lambda: 1)() or self._connection is None:
                        raise
                    raise ConnectionError("the connection closed while the operation was in flight") from cancelled
            except _CONNECTION_FAILURES as ex:
                remaining = deadline - loop.time()
                if remaining <= 0 or self._connection is None:
                    raise TaskRejectedError(
                        f"could not {what}: the broker at {redact(self.url)} has not been reachable for "
                        f"{self.publish_timeout:g} s ({ex!r}). If it was a task, it may or may not be stored: submit it "
                        "again with the same id (consumers skip an id that already ran)."
                    ) from None
                log.info("lost the broker while trying to %s (%r); waiting for it", what, ex)
                try:
                    await asyncio.wait_for(connection.connected.wait(), remaining)
                except asyncio.TimeoutError:
                    continue
                await asyncio.sleep(0.25)

    async def _publish(self, exchange: str, routing_key: str, message: aio_pika.Message, what: str) -> None:
        self._require()
        publisher = self._publisher
        assert publisher is not None

        async def publish() -> None:
            target = await publisher.get_exchange(exchange, ensure=False)
            await target.publish(message, routing_key, mandatory=True, timeout=self.publish_timeout)

        try:
            await self._when_connected(publish, f"publish {what}")
        except aiormq.exceptions.PublishError:
            raise TaskRejectedError(f"{what} was not routed: no queue is bound for it on exchange '{exchange}'", unroutable=True) from None
        except aiormq.exceptions.DeliveryError:
            raise TaskRejectedError(f"the broker refused {what} (nack); it was not stored, publish it again") from None
        except asyncio.TimeoutError:
            raise TaskRejectedError(
                f"the broker did not confirm {what} within {self.publish_timeout:g} s; it may or may not be stored"
            ) from None
        except aiormq.exceptions.AMQPError as ex:
            raise TaskRejectedError(f"the broker refused {what}: {ex!r}") from None

    def _prepare(self, task: Mapping[str, Any], session_id: Optional[str] = None) -> Dict[str, Any]:
        if not isinstance(task, Mapping):
            raise InvalidTaskError("body", f"expected a JSON object (a dict), got {type(task).__name__}")
        prepared = dict(task)
        if session_id is not None:
            if prepared.get("session_id") is None:
                prepared["session_id"] = session_id
            elif prepared["session_id"] != session_id:
                raise InvalidTaskError("session_id", f"'{prepared['session_id']}' differs from the session's '{session_id}'")
        # As the .NET producer: the creation time travels with the task (cancellations compare against it).
        if prepared.get("created_at") is None:
            prepared["created_at"] = _now()
        return prepared

    async def submit_task(self, task: Mapping[str, Any], *, session_id: Optional[str] = None) -> Dict[str, Any]:
        """Validates and publishes a task; returns (the task as sent) once the broker has stored it.

        :raises InvalidTaskError: the task breaks the wire contract; ``.field`` names the field.
        :raises TaskRejectedError: the broker did not store it (``.unroutable``: no lane queue is bound, e.g. no consumer
            ever ran on this vhost; or nacked, or refused).
        """
        prepared = self._prepare(task, session_id)
        body = encode_task(prepared)
        parsed = parse_task(body, self.max_payload_bytes)
        lane = parsed["lane"]
        message = aio_pika.Message(
            body,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=parsed["id"],
            correlation_id=parsed["id"],
            type="lanequeue.task",
            priority=_priority(lane),
            timestamp=_timestamp(parsed["created_at"]),
            headers={"lane": lane},
        )
        try:
            await self._publish(Names.TASKS_EXCHANGE, _routing_key(lane, parsed.get("session_id"), self.session_shards), message, f"task '{parsed['id']}'")
        except TaskRejectedError as ex:
            if ex.unroutable:
                raise TaskRejectedError(
                    f"task '{parsed['id']}' was not routed: no queue is bound to lane '{lane}' on exchange "
                    f"'{Names.TASKS_EXCHANGE}'. The consumers declare the lane queues when they start: has one run on "
                    f"this vhost ('{self.address.vhost}'), and is it the consumers' one?",
                    unroutable=True,
                ) from None
            raise
        return prepared

    async def submit_and_wait(
        self, task: Mapping[str, Any], timeout: float, *, session_id: Optional[str] = None
    ) -> TaskResult:
        """Submits a task and waits up to ``timeout`` seconds for its result (listening before it publishes).

        :raises ResultTimeoutError: no result in time (a ``TimeoutError``); the task is stored and may still run.
        """
        prepared = self._prepare(task, session_id)
        task_id = parse_task(encode_task(prepared), self.max_payload_bytes)["id"]  # refused before listening
        waiter = await self.watch_result(task_id)
        try:
            await self.submit_task(prepared)
            return await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except asyncio.TimeoutError:
            raise ResultTimeoutError(
                f"no result for task '{task_id}' within {timeout:g} s. It is stored in lane '{prepared.get('lane')}' "
                "and may still run: is a consumer running, or is the lane paused?"
            ) from None
        finally:
            if not waiter.done():
                waiter.cancel()

    async def watch_result(self, task_id: str) -> "asyncio.Future[TaskResult]":
        """Starts listening for a task's result (call it before submitting, so none is missed); await the returned future.

        Cancel the future to stop listening; it stops by itself once the result arrived.
        """
        queue = await self._ensure_reply_queue()
        previous = self._waiting.get(task_id)
        if previous is not None:
            if not previous.done():
                raise LaneQueueError(f"already waiting for task '{task_id}'")
            self._stop_watching(task_id, previous)  # ended, its callback not run yet: clean up now
        unbinding = self._unbinding.get(task_id)
        if unbinding is not None:  # the previous wait's unbind must not remove this wait's binding
            await asyncio.wait({unbinding})
        if task_id in self._waiting:
            raise LaneQueueError(f"already waiting for task '{task_id}'")
        future: "asyncio.Future[TaskResult]" = asyncio.get_running_loop().create_future()
        self._waiting[task_id] = future
        try:
            await self._when_connected(lambda: queue.bind(Names.RESULTS_EXCHANGE, routing_key=task_id), f"listen for the result of '{task_id}'")
        except BaseException:
            self._waiting.pop(task_id, None)
            raise
        future.add_done_callback(lambda _: self._stop_watching(task_id, future))
        return future

    def _stop_watching(self, task_id: str, future: "asyncio.Future[TaskResult]") -> None:
        """Forgets an ended wait and unbinds its routing key (once per wait)."""
        if self._waiting.get(task_id) is not future:
            return
        del self._waiting[task_id]
        if self._reply_queue is None or self._connection is None:
            return
        queue = self._reply_queue

        async def unbind() -> None:
            try:
                await queue.unbind(Names.RESULTS_EXCHANGE, routing_key=task_id)
            except Exception as ex:  # the connection may be closing; the queue goes with it
                log.debug("could not unbind the result of %s: %r", task_id, ex)

        background = asyncio.ensure_future(unbind())
        self._unbinding[task_id] = background

        def forget(done: "asyncio.Task[None]") -> None:
            if self._unbinding.get(task_id) is done:
                del self._unbinding[task_id]

        background.add_done_callback(forget)

    async def _ensure_reply_queue(self) -> AbstractQueue:
        connection = self._require()
        assert self._reply_lock is not None
        async with self._reply_lock:
            if self._reply_queue is None:
                channel = await connection.channel(publisher_confirms=False)
                queue = await channel.declare_queue(
                    f"lanequeue.replies.{uuid.uuid4().hex}", durable=False, exclusive=True, auto_delete=True
                )
                await queue.consume(self._on_result, no_ack=True)
                self._reply_channel, self._reply_queue = channel, queue
            return self._reply_queue

    async def _on_result(self, message: AbstractIncomingMessage) -> None:
        try:
            data = json.loads(message.body)
            result = TaskResult.from_json(data)
        except (ValueError, KeyError, TypeError):
            return  # not a result we can read
        waiter = self._waiting.get(result.task_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(result)

    # -- sessions and fleet commands -----------------------------------------------------------------------------------

    def session(self, session_id: str) -> "Session":
        """A session: its tasks carry ``session_id`` and can be cancelled together."""
        return Session(self, session_id)

    async def _fleet_command(self, command: Dict[str, Any], what: str) -> None:
        command["at"] = _now()
        body = json.dumps(command, separators=(",", ":")).encode("utf-8")
        message = aio_pika.Message(body, content_type="application/json", delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
        try:
            await self._publish(Names.FLEET_EXCHANGE, "", message, what)
        except TaskRejectedError as ex:
            if ex.unroutable:
                raise TaskRejectedError(
                    f"{what} was not routed: the fleet log is missing on this vhost (has a consumer ever run on it?)",
                    unroutable=True,
                ) from None
            raise

    async def cancel_task(self, task_id: str) -> None:
        """Cancels a task on every consumer: skipped if still waiting (result ``cancelled``), its run stopped if running."""
        await self._fleet_command({"command": "cancel", "task_id": task_id}, f"the cancellation of task '{task_id}'")

    async def cancel_session(self, session_id: str) -> None:
        """Cancels every task of a session created before now."""
        await self._fleet_command({"command": "cancel", "session_id": session_id}, f"the cancellation of session '{session_id}'")

    async def interrupt_session(self, session_id: str, cancel: bool = False, *, timeout: Optional[float] = None) -> str:
        """Interrupts a session from inside the queue: submits the built-in ``lanequeue.interrupt`` task on the ``control``
        lane (README, "Session interrupt"), confirmed, and returns its task id.

        When it runs, every task of the session running at that moment, on any consumer, is asked to yield (a preemptible
        one returns its checkpoint, goes back to its lane and resumes later; others run on), or with ``cancel=True`` is
        cancelled. Waiting tasks and later ones are not touched (that is ``cancel_session``). With ``timeout`` (seconds) it
        also waits for the interrupt task's result.

        :raises LaneQueueError: with ``timeout``: the interrupt task did not complete (e.g. the consumers refuse such
            tasks, ``LaneQueue:InterruptTasks=false``); the error says why.
        :raises ResultTimeoutError: with ``timeout``: no result in time.
        """
        if not isinstance(session_id, str) or not session_id.strip():
            raise InvalidTaskError("session_id", "the session to interrupt must be a non-empty string")
        task = {
            "id": f"lanequeue.interrupt-{uuid.uuid4().hex}",
            "lane": "control",
            "command_type": "lanequeue.interrupt",
            # No session_id of its own: an interrupt with cancel would otherwise cancel the interrupt task too.
            "payload": {"session_id": session_id, "cancel": bool(cancel)},
        }
        if timeout is None:
            await self.submit_task(task)
            return task["id"]
        result = await self.submit_and_wait(task, timeout)
        if not result.completed:
            raise LaneQueueError(f"the interrupt of session '{session_id}' (task '{task['id']}') ended {result.status}: {result.error}")
        return task["id"]

    # -- events ---------------------------------------------------------------------------------------------------------

    def watch_events(self, pattern: str = "command.#") -> "TaskEventStream":
        """Lifecycle events matching a topic ``pattern`` (``command.#``, ``command.completed.query``, ...).

        ``async with client.watch_events() as events: ... async for event in events:`` (the binding exists once the
        ``async with`` is entered, so submit after it).
        """
        self._require()
        return TaskEventStream(self, pattern)

    async def watch_task(
        self,
        task_id: str,
        on_event: Callable[[TaskEvent], Union[None, Awaitable[None]]],
        timeout: float,
        *,
        look_back: Optional[float] = None,
    ) -> TaskResult:
        """Follows one task to its end (the .NET ``WatchTaskAsync``): calls ``on_event`` (plain or async) with each of its
        lifecycle events in order (``command.started``, ``command.progress`` reports with ``.progress``, retries, ...),
        first those the history stream ``lanequeue.history`` already holds, then live ones, and returns its result.

        A task that already finished returns at once, after its history's events. ``look_back`` (seconds) limits how far
        back the history is read (None: its whole retention; 0: not at all, so the watch starts now and a task that
        already finished is not seen). Live events come from a subscription to ``command.#`` filtered here: fine for a
        person or a few watchers; for many tasks prefer ``watch_result``.

        :raises ResultTimeoutError: no result within ``timeout`` seconds (the history read included); the task may still run.
        :raises LaneQueueError: the history stream is missing or may not be read (pass ``look_back=0`` to watch without it).
        """
        return await _watch_task(self, task_id, on_event, timeout, look_back)

    async def on_events(self, callback: Callable[[TaskEvent], Awaitable[None]], pattern: str = "command.#") -> "TaskEventStream":
        """Calls ``callback`` for each event matching ``pattern`` until the returned stream is closed (``await s.aclose()``)."""
        stream = TaskEventStream(self, pattern, callback)
        await stream.start()
        return stream

    # -- External lanes -------------------------------------------------------------------------------------------------

    def external_tasks(self, lane: str, *, prefetch: int = 1) -> "ExternalTaskStream":
        """The tasks an External lane announces, for this process to work: ``async for task in client.external_tasks("execute")``.

        Workers compete (each announcement goes to one); ``prefetch`` is how many one worker holds at a time.
        """
        if lane not in LANES:
            raise InvalidTaskError("lane", f"'{lane}' is not a lane; expected one of {', '.join(LANES)}")
        self._require()
        return ExternalTaskStream(self, lane, prefetch)

    async def complete_external_task(
        self, task_id: str, *, success: bool = True, result: Any = None, error: Optional[str] = None
    ) -> None:
        """Publishes an External task's completion (``ExternalCompletion``) to ``lanequeue.external.completions``."""
        completion: Dict[str, Any] = {"task_id": task_id, "success": success, "result": {} if result is None else result}
        if error is not None:
            completion["error"] = error
        body = json.dumps(completion, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
        message = aio_pika.Message(body, content_type="application/json", delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
        try:
            await self._publish(Names.EXTERNAL_COMPLETIONS_EXCHANGE, task_id, message, f"the completion of external task '{task_id}'")
        except TaskRejectedError as ex:
            if ex.unroutable:
                raise TaskRejectedError(
                    f"the completion of external task '{task_id}' was not routed: no consumer waits for it any more "
                    "(its deadline passed, or it was cancelled)",
                    unroutable=True,
                ) from None
            raise


class Session:
    """Tasks of one session (``client.session("s-1")``): each gets ``session_id``; ``cancel()`` cancels them all,
    ``interrupt()`` asks the running ones to yield."""

    def __init__(self, client: LaneQueue, session_id: str) -> None:
        self.client = client
        self.session_id = session_id

    async def submit_task(self, task: Mapping[str, Any]) -> Dict[str, Any]:
        return await self.client.submit_task(task, session_id=self.session_id)

    async def submit_and_wait(self, task: Mapping[str, Any], timeout: float) -> TaskResult:
        return await self.client.submit_and_wait(task, timeout, session_id=self.session_id)

    async def cancel_task(self, task_id: str) -> None:
        await self.client.cancel_task(task_id)

    async def cancel(self) -> None:
        """Cancels every task of this session created before now."""
        await self.client.cancel_session(self.session_id)

    cancel_session = cancel

    async def interrupt(self, cancel: bool = False, *, timeout: Optional[float] = None) -> str:
        """Asks this session's running tasks to yield (``cancel=True``: cancels them); see ``LaneQueue.interrupt_session``."""
        return await self.client.interrupt_session(self.session_id, cancel, timeout=timeout)


class _Stream:
    """A channel with one consumer feeding an asyncio queue; an async iterator and an async context manager."""

    def __init__(self, client: LaneQueue) -> None:
        self.client = client
        self._channel: Optional[AbstractChannel] = None
        self._items: "asyncio.Queue[Any]" = asyncio.Queue()
        self._closed = False
        self._start_lock = asyncio.Lock()

    async def _open(self, channel: AbstractChannel) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        async with self._start_lock:
            if self._channel is not None:
                return
            if self._closed:
                raise LaneQueueError("the stream is closed")
            channel = await self.client._require().channel(publisher_confirms=False)
            try:
                await self._open(channel)
            except aiormq.exceptions.ChannelAccessRefused as ex:
                await channel.close()
                raise LaneQueueError(f"the broker refused this user what the stream needs (its own queue, a binding): {ex}") from None
            except BaseException:
                await channel.close()
                raise
            self._channel = channel
            self.client._streams.add(self)

    async def aclose(self) -> None:
        self._closed = True
        self.client._streams.discard(self)
        channel, self._channel = self._channel, None
        self._items.put_nowait(_END)
        if channel is not None and not channel.is_closed:
            try:
                await channel.close()
            except Exception as ex:
                log.debug("closing a stream's channel: %r", ex)

    async def __aenter__(self) -> Any:
        await self.start()
        return self

    async def __aexit__(self, *_: Any) -> None:
        await self.aclose()

    def __aiter__(self) -> Any:
        return self

    async def _next_item(self) -> Any:
        if self._channel is None and not self._closed:
            await self.start()
        item = await self._items.get()
        if item is _END:
            self._items.put_nowait(_END)
            raise StopAsyncIteration
        return item


_END = object()


class TaskEventStream(_Stream):
    """Lifecycle events on a queue of this client's own (exclusive, auto-delete) bound to ``lanequeue.events``."""

    def __init__(
        self, client: LaneQueue, pattern: str, callback: Optional[Callable[[TaskEvent], Awaitable[None]]] = None
    ) -> None:
        super().__init__(client)
        self.pattern = pattern
        self._callback = callback

    async def _open(self, channel: AbstractChannel) -> None:
        queue = await channel.declare_queue("", durable=False, exclusive=True, auto_delete=True)
        await queue.bind(Names.EVENTS_EXCHANGE, routing_key=self.pattern)
        await queue.consume(self._on_message, no_ack=True)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        try:
            data = json.loads(message.body)
            event = TaskEvent.from_json(data, message.routing_key or "")
        except (ValueError, KeyError, TypeError):
            return  # not a task event (lane.pressure and the like have no task id)
        if self._callback is not None:
            try:
                await self._callback(event)
            except Exception:
                log.exception("event callback failed for %s", event)
        else:
            self._items.put_nowait(event)

    async def __anext__(self) -> TaskEvent:
        item: TaskEvent = await self._next_item()
        return item


class ExternalTask:
    """A task an External lane announced: work it, then ``await task.complete(result)`` or ``await task.fail(error)``."""

    def __init__(self, client: LaneQueue, message: AbstractIncomingMessage, task: Dict[str, Any]) -> None:
        self._client = client
        self._message = message
        self.task = task
        self.id: str = task["id"]
        self.lane: str = task.get("lane", "")
        self.payload: Any = task.get("payload")
        self.command_type: Optional[str] = task.get("command_type")
        self.session_id: Optional[str] = task.get("session_id")
        headers = message.headers or {}
        consumer = headers.get("consumer")
        self.consumer: Optional[str] = consumer.decode() if isinstance(consumer, bytes) else consumer  # type: ignore[assignment]
        self.done = False

    def __repr__(self) -> str:
        return f"ExternalTask(id={self.id!r}, lane={self.lane!r}, consumer={self.consumer!r})"

    async def complete(self, result: Any = None) -> None:
        """Reports success with ``result`` (any JSON; ``{}`` when None); the task's result carries it."""
        await self._finish(True, result, None)

    async def fail(self, error: str) -> None:
        """Reports failure; the consumer handles it like a handler's exception (retried per its retry policy)."""
        await self._finish(False, None, error)

    async def release(self) -> None:
        """Hands the announcement back for another worker, without completing it."""
        if not self.done:
            self.done = True
            await self._message.reject(requeue=True)

    async def _finish(self, success: bool, result: Any, error: Optional[str]) -> None:
        if self.done:
            raise LaneQueueError(f"external task '{self.id}' is already completed or released")
        try:
            await self._client.complete_external_task(self.id, success=success, result=result, error=error)
        except TaskRejectedError as ex:
            if ex.unroutable:  # nobody waits for it any more: the announcement is spent
                self.done = True
                await self._message.ack()
            raise
        self.done = True
        await self._message.ack()


class ExternalTaskStream(_Stream):
    """Consumes ``lanequeue.external.<lane>`` with manual acks (declared and bound as the consumers do)."""

    def __init__(self, client: LaneQueue, lane: str, prefetch: int) -> None:
        super().__init__(client)
        self.lane = lane
        self.prefetch = prefetch

    async def _open(self, channel: AbstractChannel) -> None:
        name = Names.external_queue(self.lane)
        connection = self.client._require()
        # Declared and bound as every consumer and the .NET producer do, on a channel of its own (a refusal closes it); a
        # user without configure permission uses the queue a consumer declared.
        setup = await connection.channel(publisher_confirms=False)
        try:
            queue = await setup.declare_queue(name, durable=True)
            await queue.bind(Names.EXTERNAL_EXCHANGE, routing_key=self.lane)
        except aiormq.exceptions.ChannelAccessRefused:
            probe = await connection.channel(publisher_confirms=False)
            try:
                await probe.declare_queue(name, passive=True)
            except aiormq.exceptions.ChannelNotFoundEntity:
                raise LaneQueueError(
                    f"the queue '{name}' does not exist and this user may not declare it: start a consumer first"
                ) from None
            finally:
                if not probe.is_closed:
                    await probe.close()
        finally:
            if not setup.is_closed:
                await setup.close()
        await channel.set_qos(prefetch_count=self.prefetch)
        queue = await channel.declare_queue(name, passive=True)
        await queue.consume(self._on_message, no_ack=False)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        try:
            task = json.loads(message.body)
            if not isinstance(task, dict) or not isinstance(task.get("id"), str):
                raise ValueError("not a task")
        except ValueError:
            await message.reject(requeue=False)
            return
        self._items.put_nowait(ExternalTask(self.client, message, task))

    async def __anext__(self) -> ExternalTask:
        item: ExternalTask = await self._next_item()
        return item

    def __aiter__(self) -> AsyncIterator[ExternalTask]:
        return self
