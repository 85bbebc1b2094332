"""The task check: every shared verdict case of src/Contracts/wire-cases.json, and validate_task on tasks built in code."""

from __future__ import annotations

import base64
import json
import os
import pathlib
import re
import sys
from typing import Any, Dict, List

import pytest

import lanequeue
from lanequeue import InvalidTaskError, parse_task, validate_task


def _find_cases() -> pathlib.Path:
    explicit = os.environ.get("LANEQUEUE_WIRE_CASES")
    if explicit:
        return pathlib.Path(explicit)
    for parent in pathlib.Path(__file__).resolve().parents:
        candidate = parent / "src" / "Contracts" / "wire-cases.json"
        if candidate.exists():
            return candidate
    raise FileNotFoundError(
        "src/Contracts/wire-cases.json not found above the tests; set LANEQUEUE_WIRE_CASES to its path"
    )


CASES_FILE = _find_cases()
DOCUMENT: Dict[str, Any] = json.loads(CASES_FILE.read_text(encoding="utf-8"))
CASES: List[Dict[str, Any]] = DOCUMENT["cases"]
_LONE = re.compile("[\ud800-\udfff]")


def _body(case: Dict[str, Any]) -> bytes:
    if "body_base64" in case:
        return base64.b64decode(case["body_base64"])
    # As the .NET test reads it (Encoding.UTF8.GetBytes): a lone surrogate in the text becomes U+FFFD.
    return _LONE.sub("\ufffd", case["body"]).encode("utf-8")


def test_the_cases_file_holds_at_least_60_cases_with_both_verdicts() -> None:
    assert len(CASES) >= 60
    assert any(c["valid"] for c in CASES) and any(not c["valid"] for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_parse_task_gives_each_shared_case_the_dotnet_verdict_and_field(case: Dict[str, Any]) -> None:
    try:
        task = parse_task(_body(case), DOCUMENT["max_payload_bytes"])
    except InvalidTaskError as refused:
        assert not case["valid"], f"refused a valid task: {refused}"
        assert refused.field == case["field"], f"named field '{refused.field}' ({refused}), expected '{case['field']}'"
        assert str(refused).startswith(refused.field + ": ")
        return
    assert case["valid"], f"accepted a task the .NET parser refuses on '{case.get('field')}'"
    assert set(task) >= {"id", "lane", "payload"}


def _field(task: Any) -> str:
    with pytest.raises(InvalidTaskError) as refused:
        validate_task(task)
    assert str(refused.value) == f"{refused.value.field}: {refused.value.problem}"
    return refused.value.field


def test_validate_task_names_the_field_of_a_task_built_in_code() -> None:
    ok = {"id": "t-1", "lane": "query", "payload": {"q": "é€😀"}}
    validate_task(ok)
    assert _field({**ok, "id": "a b"}) == "id"
    assert _field({**ok, "id": "x" * 201}) == "id"
    assert _field({"lane": "query", "payload": {}}) == "id"
    assert _field({**ok, "lane": "Query"}) == "lane"
    assert _field({"id": "t-1", "lane": "query"}) == "payload"
    assert _field({**ok, "payload": "x" * (1024 * 1024)}) == "payload"
    assert _field({**ok, "payload": {"s": "\ud800"}}) == "payload"
    assert _field({**ok, "payload": {"n": float("nan")}}) == "payload"
    assert _field({**ok, "payload": {1, 2}}) == "payload"
    assert _field({**ok, "timeout_ms": 0}) == "timeout_ms"
    assert _field({**ok, "timeout_ms": 2**31}) == "timeout_ms"
    assert _field({**ok, "timeout_ms": 1.5}) == "timeout_ms"
    assert _field({**ok, "command_type": 3}) == "command_type"
    assert _field({**ok, "session_id": "s" * 201}) == "session_id"
    assert _field({**ok, "created_at": "2026-01-31T12:00:00"}) == "created_at"
    assert _field({**ok, "preemptible": "yes"}) == "preemptible"
    assert _field({**ok, "checkpoint": ["\udc00"]}) == "checkpoint"
    assert _field(["not", "a", "dict"]) == "body"
    validate_task({**ok, "payload": "x" * (1024 * 1024 - 2)})  # the quotes make it exactly the limit
    validate_task({**ok, "timeout_ms": 5000, "created_at": "2026-01-31T13:00:00.5+01:00", "session_id": "😀" * 200})


def test_parse_task_reads_a_massTransit_envelope_and_reports_the_message_as_sent() -> None:
    body = json.dumps({"messageType": ["urn:message:LaneQueue.Contracts:ExternalTask"],
                       "message": {"id": "m-1", "lane": "control", "payload": [1, 2], "timeout_ms": 5e3}}).encode()
    assert parse_task(body) == {"id": "m-1", "lane": "control", "payload": [1, 2], "timeout_ms": 5000}


def test_depth_and_syntax_errors_are_told_apart_as_the_dotnet_parser_does() -> None:
    head = '{"id":"t","lane":"query","payload":'
    with pytest.raises(InvalidTaskError, match="nested deeper than 64"):
        parse_task((head + "[" * 100 + "]" * 100 + "}").encode())
    with pytest.raises(InvalidTaskError, match="not valid JSON"):
        parse_task((head + "[" * 5 + "x" + "[" * 100).encode())
    with pytest.raises(InvalidTaskError, match="nested deeper than 64"):
        parse_task((head + "[" * 100 + "x").encode())


def test_broker_urls_are_read_as_the_dotnet_producer_reads_them() -> None:
    address = lanequeue.BrokerAddress.parse("amqps://u:p%40ss@node1,node2:5673,[::1]/my%2Fvhost?verify=verify_none&server_name_indication=rabbit")
    assert address.hosts == [("node1", 5671), ("node2", 5673), ("::1", 5671)]
    assert (address.user, address.password, address.vhost) == ("u", "p@ss", "my/vhost")
    assert address.is_tls and address.ssl_context("node1") is not None
    assert lanequeue.BrokerAddress.parse("amqp://localhost").vhost == "/"
    for bad in ("http://x", "amqp://h?nope=1", "amqp://h:99999/", "amqps://h?certfile=a.pem"):
        with pytest.raises(ValueError):
            lanequeue.BrokerAddress.parse(bad)


def test_the_installed_package_is_the_one_under_test() -> None:
    """With LANEQUEUE_EXPECT_INSTALLED=1 (set by the .NET runner), lanequeue must come from the venv, typed."""
    location = pathlib.Path(lanequeue.__file__).resolve().parent
    assert (location / "py.typed").exists()
    if os.environ.get("LANEQUEUE_EXPECT_INSTALLED"):
        import importlib.metadata

        assert importlib.metadata.version("lanequeue") == lanequeue.__version__
        assert str(location).startswith(str(pathlib.Path(sys.prefix).resolve())), f"lanequeue imported from {location}, not from {sys.prefix}"
        assert "src" not in location.parts[-2:], location


def test_session_shards_are_fnv1a_of_the_session_id_as_the_dotnet_producer_computes_them() -> None:
    # FNV-1a (32-bit) reference values: "" = 0x811c9dc5, "a" = 0xe40c292c, "foobar" = 0xbf9cf968 (SessionShardsTests in .NET).
    assert lanequeue.session_shard("", 7) == 0x811C9DC5 % 7
    assert lanequeue.session_shard("a", 8) == 0xE40C292C % 8
    assert lanequeue.session_shard("foobar", 64) == 0xBF9CF968 % 64
    with pytest.raises(ValueError):
        lanequeue.session_shard("a", 0)


def test_a_task_with_a_session_in_a_sharded_lane_is_routed_to_its_shard_and_any_other_to_its_lane() -> None:
    shards = {"generate": 8}
    assert lanequeue.routing_key("generate", "a", shards) == f"generate.s{0xE40C292C % 8:02d}"
    assert lanequeue.routing_key("generate", None, shards) == "generate"
    assert lanequeue.routing_key("query", "a", shards) == "query"
    assert lanequeue.routing_key("generate", "a", None) == "generate"
    with pytest.raises(ValueError, match="session_shards"):
        lanequeue.LaneQueue("amqp://guest:guest@localhost/", session_shards={"generate": 65})
