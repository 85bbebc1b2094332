"""The exceptions of the LaneQueue client."""

from __future__ import annotations

__all__ = ["LaneQueueError", "InvalidTaskError", "TaskRejectedError", "ResultTimeoutError"]


class LaneQueueError(Exception):
    """Base class of every error this library raises on purpose."""


class InvalidTaskError(LaneQueueError, ValueError):
    """A task that breaks the wire contract (the .NET ``InvalidTaskException``).

    ``field`` names the offending field (``id``, ``lane``, ``payload``, ``command_type``, ``session_id``, ``timeout_ms``,
    ``created_at``, ``preemptible``, ``checkpoint``) or ``body`` for the message as a whole; the message reads
    ``"<field>: <problem>"``.
    """

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class TaskRejectedError(LaneQueueError):
    """The broker did not store what was published: unroutable (no queue bound), nacked, or refused (channel closed)."""

    def __init__(self, message: str, *, unroutable: bool = False) -> None:
        super().__init__(message)
        self.unroutable = unroutable


class ResultTimeoutError(LaneQueueError, TimeoutError):
    """No result arrived in time; the task is stored and may still run."""
