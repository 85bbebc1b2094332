"""Shared helpers of the lanequeue test suite.

The broker tests need ``LANEQUEUE_RABBITMQ_URL`` (a vhost URL where a LaneQueue consumer fleet runs with the built-in
handlers and lane ``execute`` in External mode); ``LANEQUEUE_RABBITMQ_MANAGEMENT_URL`` lets a test make a vhost of its own.
Nothing is skipped: a missing broker fails the broker tests, saying what is missing.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import os
import time
import urllib.request
import uuid
from typing import Any, Awaitable, Callable, Iterator, Optional

import pytest


if os.environ.get("LANEQUEUE_EXPECT_INSTALLED"):
    # Set by the .NET runner: the package under test must be the installed wheel, not a source tree on the path.
    import sys

    import lanequeue

    _location = os.path.dirname(os.path.realpath(lanequeue.__file__))
    if not _location.startswith(os.path.realpath(sys.prefix) + os.sep):
        raise pytest.UsageError(f"lanequeue was imported from {_location}, not from the environment {sys.prefix}")


def run_async(test: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
    """Runs an async test function in its own event loop (no pytest-asyncio needed), with a 75 s ceiling."""

    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return asyncio.run(asyncio.wait_for(test(*args, **kwargs), 75))

    return wrapper


@pytest.fixture
def broker_url() -> str:
    url = os.environ.get("LANEQUEUE_RABBITMQ_URL")
    if not url:
        pytest.fail(
            "LANEQUEUE_RABBITMQ_URL is not set: the broker tests need a vhost URL where a LaneQueue consumer fleet runs "
            "(tests/LaneQueue.Tests/Integration/PythonClientTests.cs starts one and runs this suite)"
        )
    return url


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class Management:
    """The RabbitMQ management API, for a vhost of the test's own."""

    def __init__(self, base: str, user: str, password: str) -> None:
        self.base = base.rstrip("/")
        self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def request(self, method: str, path: str, body: Optional[Any] = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Authorization", self.auth)
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read()
        return json.loads(text) if text else None

    def close_connections(self, vhost: str, connection_name: str, timeout: float = 30) -> int:
        """Closes (as an operator would) the vhost's connections a client opened under ``connection_name``; waits for them
        to show in the management API (it refreshes every few seconds). Returns how many were closed."""
        from urllib.parse import quote

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [
                c["name"]
                for c in self.request("GET", f"/api/vhosts/{quote(vhost, safe='')}/connections") or []
                if (c.get("client_properties") or {}).get("connection_name") == connection_name
            ]
            if found:
                for name in found:
                    self.request("DELETE", f"/api/connections/{quote(name, safe='')}")
                return len(found)
            time.sleep(0.5)
        raise AssertionError(f"no connection named {connection_name} on vhost {vhost} within {timeout} s")


@pytest.fixture
def management(broker_url: str) -> Management:
    """The management API, with the broker URL's credentials (LANEQUEUE_RABBITMQ_MANAGEMENT_URL)."""
    from urllib.parse import urlsplit

    base = os.environ.get("LANEQUEUE_RABBITMQ_MANAGEMENT_URL")
    if not base:
        pytest.fail("LANEQUEUE_RABBITMQ_MANAGEMENT_URL is not set (e.g. http://localhost:15672)")
    parts = urlsplit(broker_url)
    return Management(base, parts.username or "guest", parts.password or "guest")


@pytest.fixture
def empty_vhost_url(broker_url: str) -> Iterator[str]:
    """The URL of a fresh vhost where nothing is declared (made and deleted through the management API)."""
    from urllib.parse import quote, urlsplit

    base = os.environ.get("LANEQUEUE_RABBITMQ_MANAGEMENT_URL")
    if not base:
        pytest.fail("LANEQUEUE_RABBITMQ_MANAGEMENT_URL is not set (e.g. http://localhost:15672): needed to make a vhost")
    parts = urlsplit(broker_url)
    user, password = parts.username or "guest", parts.password or "guest"
    api = Management(base, user, password)
    vhost = unique("lq-py-empty")
    api.request("PUT", f"/api/vhosts/{quote(vhost, safe='')}", {})
    api.request("PUT", f"/api/permissions/{quote(vhost, safe='')}/{quote(user, safe='')}", {"configure": ".*", "write": ".*", "read": ".*"})
    try:
        yield parts._replace(path="/" + quote(vhost, safe="")).geturl()
    finally:
        api.request("DELETE", f"/api/vhosts/{quote(vhost, safe='')}")
