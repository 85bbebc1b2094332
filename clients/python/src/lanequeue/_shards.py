"""Session shards (docs/wire-contract.md §2): a task with a session_id may go to its session's shard queue of the lane,
so one session's backlog does not hold back the others. Computed as the .NET producer does."""

from __future__ import annotations

from typing import Mapping, Optional

_FNV_OFFSET = 2166136261
_FNV_PRIME = 16777619
MAX_SHARDS = 64


def session_shard(session_id: str, shards: int) -> int:
    """The shard of ``session_id`` among ``shards``: FNV-1a (32-bit) of its UTF-8 bytes, modulo ``shards``."""
    if shards < 1:
        raise ValueError(f"shards must be at least 1, got {shards}")
    value = _FNV_OFFSET
    for byte in session_id.encode("utf-8"):
        value ^= byte
        value = (value * _FNV_PRIME) & 0xFFFFFFFF
    return value % shards


def routing_key(lane: str, session_id: Optional[str], session_shards: Optional[Mapping[str, int]]) -> str:
    """Where a task of ``lane`` is published: ``<lane>.sNN`` for a task with a session in a sharded lane, else the lane."""
    shards = (session_shards or {}).get(lane, 0)
    if shards > 0 and session_id:
        return f"{lane}.s{session_shard(session_id, shards):02d}"
    return lane
