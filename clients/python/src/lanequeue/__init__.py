"""LaneQueue's Python client: submit tasks to priority lanes, wait for their results, cancel them, follow their events,
and work the tasks of External lanes. Async, on aio-pika; speaks docs/wire-contract.md like the .NET producer.

    async with LaneQueue("amqp://guest:guest@localhost:5672/lanequeue") as client:
        session = client.session("s-1")
        await session.submit_task({"id": "report-1", "lane": "generate", "payload": {"ms": 3000}, "command_type": "sleep"})
        result = await session.submit_and_wait({"id": "q-1", "lane": "query", "payload": {"q": "status"}}, timeout=30)
"""

from ._address import DEFAULT_URL, URL_VARIABLE, BrokerAddress
from ._client import (
    ExternalTask,
    ExternalTaskStream,
    LaneQueue,
    Names,
    Session,
    Status,
    TaskEvent,
    TaskEventStream,
    TaskResult,
)
from ._errors import InvalidTaskError, LaneQueueError, ResultTimeoutError, TaskRejectedError
from ._shards import routing_key, session_shard
from ._validation import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    LANES,
    MAX_TIMEOUT_MS,
    encode_task,
    is_valid_id,
    parse_task,
    validate_task,
)

__version__ = "1.4.0"

__all__ = [
    "BrokerAddress",
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "DEFAULT_URL",
    "ExternalTask",
    "ExternalTaskStream",
    "InvalidTaskError",
    "LANES",
    "LaneQueue",
    "LaneQueueError",
    "MAX_TIMEOUT_MS",
    "Names",
    "ResultTimeoutError",
    "Session",
    "Status",
    "TaskEvent",
    "TaskEventStream",
    "TaskRejectedError",
    "TaskResult",
    "URL_VARIABLE",
    "encode_task",
    "is_valid_id",
    "parse_task",
    "routing_key",
    "session_shard",
    "validate_task",
]
