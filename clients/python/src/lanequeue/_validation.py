"""The wire contract's task check, as ``src/Contracts/TaskParser.cs`` does it.

:func:`parse_task` reads raw bytes exactly as the .NET parser reads them (same verdict and same field for every body,
``src/Contracts/wire-cases.json``); :func:`validate_task` checks a task built in code by checking the bytes the client
would publish for it.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import json
import re
from typing import Any, Dict, List, Optional, Tuple

from ._errors import InvalidTaskError

__all__ = [
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "LANES",
    "MAX_BODY_OVERHEAD_BYTES",
    "MAX_DEPTH",
    "MAX_ID_LENGTH",
    "MAX_TIMEOUT_MS",
    "encode_task",
    "is_valid_id",
    "parse_task",
    "validate_task",
]

DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024
MAX_ID_LENGTH = 200
MAX_OPTIONAL_STRING_LENGTH = 200
MAX_TIMEOUT_MS = 2147483647
# Longest delay of a delayed task (delay_ms, or not_before ahead of now): 20 hours, as TaskParser.MaxDelayMs.
MAX_DELAY_MS = 20 * 60 * 60 * 1000
# Longest dedup_window_ms: 24 hours, as TaskParser.MaxDedupWindowMs.
MAX_DEDUP_WINDOW_MS = 24 * 60 * 60 * 1000
# dedup_window_ms of a task with a dedup_key and no window: 60 s, as TaskParser.DefaultDedupWindowMs.
DEFAULT_DEDUP_WINDOW_MS = 60_000
# dedup_mode values, as TaskParser.DedupOnce / DedupDebounce: the first task with a key runs, or the last one seen.
DEDUP_MODES: Tuple[str, ...] = ("once", "debounce")
MAX_BODY_OVERHEAD_BYTES = 64 * 1024
MAX_DEPTH = 64

#: The lanes, highest priority first.
LANES: Tuple[str, ...] = ("control", "query", "execute", "generate")
_LANE_NAMES = ", ".join(LANES)
_KNOWN_FIELDS = frozenset(
    ["id", "lane", "payload", "command_type", "session_id", "timeout_ms", "created_at", "preemptible", "checkpoint",
     "delay_ms", "not_before", "dedup_key", "dedup_window_ms", "dedup_mode"]
)
_BOM = b"\xef\xbb\xbf"

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/-]*")
_RFC3339 = re.compile(
    r"(19|2[0-9])[0-9]{2}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?"
    r"(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9]|[+-]14:00)"
)
_SURROGATE = re.compile("[\ud800-\udfff]")

# Strict RFC 8259 tokens, as System.Text.Json reads them (no NaN, comments, trailing commas, control characters).
_WS = re.compile(r"[ \t\n\r]*")
_STRING = re.compile(r'"[^"\\\x00-\x1f]*(?:\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})[^"\\\x00-\x1f]*)*"')
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


def is_valid_id(task_id: object) -> bool:
    """Whether ``task_id`` is a valid task id: 1-200 ASCII letters, digits and ``. _ : @ / -``, starting with a letter or digit."""
    return isinstance(task_id, str) and 0 < len(task_id) <= MAX_ID_LENGTH and _ID.fullmatch(task_id) is not None


def _truncate(value: str) -> str:
    """At most 40 UTF-16 units of ``value`` (as the .NET parser shows values in its messages)."""
    units = value.encode("utf-16-le", "surrogatepass")
    if len(units) <= 80:
        return value
    cut = 39 if 0xD800 <= int.from_bytes(units[78:80], "little") <= 0xDBFF else 40
    return units[: cut * 2].decode("utf-16-le", "surrogatepass") + "\u2026"


class _Obj(list):  # type: ignore[type-arg]
    """A JSON object as read: its (key, value) pairs in order, repeated keys kept."""

    def get_first(self, key: str) -> Tuple[bool, Any]:
        for name, value in self:
            if name == key:
                return True, value
        return False, None


class _Scan:
    """Where the members of the objects at depth 1 and 2 are in the text (for the payload's size as sent)."""

    def __init__(self) -> None:
        self.objects: Dict[int, List[Tuple[str, int, int]]] = {}


class _JsonProblem(Exception):
    def __init__(self, too_deep: bool, message: str) -> None:
        super().__init__(message)
        self.too_deep = too_deep


def _scan(text: str) -> _Scan:
    """Checks ``text`` is one strict JSON value nested at most MAX_DEPTH deep; whichever problem comes first wins."""
    scan = _Scan()
    n = len(text)
    # frame: [is_object, start, members (depth <= 2 objects) or None, current key]
    stack: List[List[Any]] = []
    i = _WS.match(text, 0).end()  # type: ignore[union-attr]
    state = "value"

    def fail(message: str, at: int) -> _JsonProblem:
        return _JsonProblem(False, f"{message} at character {at}")

    while True:
        if state == "value":
            if i >= n:
                raise fail("expected a value, got the end of the text", i)
            c = text[i]
            if c == "{" or c == "[":
                if len(stack) >= MAX_DEPTH:
                    raise _JsonProblem(True, "too deep")
                members: Optional[List[Tuple[str, int, int]]] = None
                if c == "{" and len(stack) < 2:
                    members = []
                    scan.objects[i] = members
                stack.append([c == "{", i, members, None])
                i = _WS.match(text, i + 1).end()  # type: ignore[union-attr]
                close = "}" if c == "{" else "]"
                if i < n and text[i] == close:
                    frame = stack.pop()
                    i += 1
                    start, end = frame[1], i
                else:
                    state = "key" if c == "{" else "value"
                    continue
            else:
                start = i
                if c == '"':
                    m = _STRING.match(text, i)
                    if m is None:
                        raise fail("invalid string", i)
                    end = m.end()
                elif c == "-" or "0" <= c <= "9":
                    m = _NUMBER.match(text, i)
                    if m is None:
                        raise fail("invalid number", i)
                    end = m.end()
                elif text.startswith("true", i):
                    end = i + 4
                elif text.startswith("false", i):
                    end = i + 5
                elif text.startswith("null", i):
                    end = i + 4
                else:
                    raise fail(f"unexpected character {c!r}", i)
                i = end
            # A value ended (scalar, or a container just closed): start..end.
            while True:
                if not stack:
                    i = _WS.match(text, i).end()  # type: ignore[union-attr]
                    if i != n:
                        raise fail("more text after the JSON value", i)
                    return scan
                top = stack[-1]
                if top[0] and top[2] is not None:
                    top[2].append((top[3], start, end))
                i = _WS.match(text, i).end()  # type: ignore[union-attr]
                if i >= n:
                    raise fail("unexpected end of the text", i)
                c = text[i]
                if c == ",":
                    i = _WS.match(text, i + 1).end()  # type: ignore[union-attr]
                    state = "key" if top[0] else "value"
                    break
                if c == ("}" if top[0] else "]"):
                    stack.pop()
                    start, end = top[1], i + 1
                    i += 1
                    continue
                raise fail(f"unexpected character {c!r}", i)
        else:  # key
            if i >= n or text[i] != '"':
                raise fail("expected a property name", i)
            m = _STRING.match(text, i)
            if m is None:
                raise fail("invalid property name", i)
            stack[-1][3] = m.group(0)
            i = _WS.match(text, m.end()).end()  # type: ignore[union-attr]
            if i >= n or text[i] != ":":
                raise fail("expected ':'", i)
            i = _WS.match(text, i + 1).end()  # type: ignore[union-attr]
            state = "value"


def _parse_int(text: str) -> Any:
    try:
        return int(text)
    except ValueError:  # longer than Python's int-string limit
        return decimal.Decimal(text)


def _parse_float(text: str) -> Any:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        return decimal.Decimal(text)
    return value


def _describe(value: Any) -> str:
    if isinstance(value, _Obj):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


def _reject_repeated_keys(obj: _Obj) -> None:
    seen = set()
    for name, _ in obj:
        if _SURROGATE.search(name):
            raise InvalidTaskError("body", "a key is not valid Unicode text (unpaired surrogate escape)")
        if name in seen:
            raise InvalidTaskError(
                name if name in _KNOWN_FIELDS else "body", f"the key '{_truncate(name)}' appears more than once"
            )
        seen.add(name)


def _is_unicode(value: Any) -> bool:
    if isinstance(value, str):
        return _SURROGATE.search(value) is None
    if isinstance(value, _Obj):
        return all(_SURROGATE.search(k) is None and _is_unicode(v) for k, v in value)
    if isinstance(value, list):
        return all(_is_unicode(v) for v in value)
    return True


def _plain(value: Any) -> Any:
    if isinstance(value, _Obj):
        return {k: _plain(v) for k, v in value}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _text(value: str, field: str) -> str:
    if _SURROGATE.search(value):
        raise InvalidTaskError(field, "not valid Unicode text (unpaired surrogate escape)")
    return value


def _required_string(obj: _Obj, name: str) -> str:
    found, value = obj.get_first(name)
    if not found or value is None:
        raise InvalidTaskError(name, "missing")
    if not isinstance(value, str):
        raise InvalidTaskError(name, f"must be a string, got {_describe(value)}")
    return _text(value, name)


def _optional_string(obj: _Obj, name: str) -> Optional[str]:
    found, value = obj.get_first(name)
    if not found or value is None:
        return None
    if not isinstance(value, str):
        raise InvalidTaskError(name, f"must be a string, got {_describe(value)}")
    return _text(value, name)


_DECIMAL_MAX = decimal.Decimal(79228162514264337593543950335)


def _whole_number(raw: str) -> Optional[int]:
    """A JSON number with no fraction, as TaskParser.TryGetWholeNumber reads it (saturating); None when it has one."""
    if "." not in raw and "e" not in raw and "E" not in raw:
        digits = raw.lstrip("-")
        if len(digits) > 20:
            return 2**63 - 1 if not raw.startswith("-") else -(2**63)
        return max(-(2**63), min(2**63 - 1, int(raw)))
    exact = decimal.Decimal(raw)
    if exact.is_zero() or abs(exact) <= _DECIMAL_MAX:
        # System.Decimal keeps 28-29 significant digits and at most 28 decimals: digits past that round away.
        with decimal.localcontext() as context:
            context.prec = 29
            context.rounding = decimal.ROUND_HALF_EVEN
            rounded = +exact
            if abs(rounded) > _DECIMAL_MAX:
                context.prec = 28
                rounded = +exact
            if rounded.as_tuple().exponent < -28:  # type: ignore[operator]
                rounded = rounded.quantize(decimal.Decimal(1).scaleb(-28))
        if rounded != rounded.to_integral_value():
            return None
        return int(rounded)
    # Beyond System.Decimal: a double (1e30 is whole; 1e400 is infinite, whole and far out of range).
    approximate = float(exact) if abs(exact) < decimal.Decimal("1.8e308") else float("inf")
    if approximate not in (float("inf"), float("-inf")) and approximate != int(approximate):
        return None
    return 2**63 - 1 if exact > 0 else -(2**63)


def _optional_milliseconds(obj: _Obj, name: str, raw: Optional[str]) -> Optional[int]:
    """A whole number of milliseconds in field `name` (its JSON text `raw`), or None when absent or null."""
    found, value = obj.get_first(name)
    if not found or value is None:
        return None
    number = _whole_number(raw) if raw is not None and not isinstance(value, (str, bool, list)) else None
    if raw is None or isinstance(value, (str, bool, list)) or number is None:
        shown = _truncate(raw) if raw is not None and not isinstance(value, (str, bool, list)) else _describe(value)
        raise InvalidTaskError(name, f"must be a whole number of milliseconds, got {shown}")
    return number


def _optional_timeout(obj: _Obj, raw: Optional[str]) -> Optional[int]:
    number = _optional_milliseconds(obj, "timeout_ms", raw)
    if number is not None and number <= 0:
        raise InvalidTaskError("timeout_ms", f"{_truncate(raw)} must be a positive number of milliseconds")
    if number is not None and number > MAX_TIMEOUT_MS:
        raise InvalidTaskError("timeout_ms", f"{_truncate(raw)} is over the limit of {MAX_TIMEOUT_MS} ms (about 24.8 days)")
    return number


def _is_date_time_offset(text: str) -> bool:
    """What System.Text.Json's TryGetDateTimeOffset adds to the pattern: a real date, at most 16 fraction digits, 42 characters."""
    if len(text) > 42:
        return False
    fraction = re.search(r"\.([0-9]+)", text)
    if fraction is not None and len(fraction.group(1)) > 16:
        return False
    try:
        _dt.date(int(text[0:4]), int(text[5:7]), int(text[8:10]))
    except ValueError:
        return False
    return True


def _optional_dedup_window(obj: _Obj, raw: Optional[str]) -> Optional[int]:
    number = _optional_milliseconds(obj, "dedup_window_ms", raw)
    if number is not None and (number < 1 or number > MAX_DEDUP_WINDOW_MS):
        raise InvalidTaskError("dedup_window_ms", f"{_truncate(raw)} must be from 1 to {MAX_DEDUP_WINDOW_MS} ms (24 hours)")
    return number


def _optional_delay(obj: _Obj, raw: Optional[str]) -> Optional[int]:
    number = _optional_milliseconds(obj, "delay_ms", raw)
    if number is not None and number < 0:
        raise InvalidTaskError("delay_ms", f"{_truncate(raw)} must be 0 or more milliseconds")
    if number is not None and number > MAX_DELAY_MS:
        raise InvalidTaskError("delay_ms", f"{_truncate(raw)} is over the limit of {MAX_DELAY_MS} ms (20 hours)")
    return number


def _instant(text: str) -> _dt.datetime:
    """An RFC 3339 timestamp (already checked) as an aware datetime (fraction cut to microseconds)."""
    match = re.fullmatch(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})", text)
    assert match is not None
    zone = "+00:00" if match.group(3) == "Z" else match.group(3)
    return _dt.datetime.fromisoformat(match.group(1) + "." + (match.group(2) or "0")[:6].ljust(6, "0") + zone)


def _optional_timestamp(obj: _Obj, name: str = "created_at") -> Optional[str]:
    found, value = obj.get_first(name)
    if not found or value is None:
        return None
    if isinstance(value, str) and _RFC3339.fullmatch(_text(value, name)) and _is_date_time_offset(value):
        return value
    raise InvalidTaskError(
        name, "must be an RFC 3339 timestamp with a time zone, such as 2026-01-31T12:00:00Z or 2026-01-31T13:00:00.5+01:00"
    )


def _optional_bool(obj: _Obj) -> bool:
    found, value = obj.get_first("preemptible")
    if not found or value is None:
        return False
    if isinstance(value, bool):
        return value
    raise InvalidTaskError("preemptible", f"must be true or false, got {_describe(value)}")


def _utf16_length(value: str) -> int:
    return len(value.encode("utf-16-le", "surrogatepass")) // 2


def _check_length(field: str, value: Optional[str]) -> None:
    if value is not None and len(value) > MAX_OPTIONAL_STRING_LENGTH:
        raise InvalidTaskError(field, f"{len(value)} characters is over the limit of {MAX_OPTIONAL_STRING_LENGTH}")


def _read(obj: _Obj, spans: Dict[str, Tuple[int, int]], text: str, max_payload_bytes: int) -> Dict[str, Any]:
    task_id = _required_string(obj, "id")
    lane = _required_string(obj, "lane")
    if lane not in LANES:
        hint = " (lane names are lower case)" if lane.lower() in LANES else ""
        raise InvalidTaskError("lane", f"'{_truncate(lane)}' is not a lane{hint}; expected one of {_LANE_NAMES}")
    found, payload = obj.get_first("payload")
    if not found:
        raise InvalidTaskError("payload", "missing; send {} when the task has no payload")
    command_type = _optional_string(obj, "command_type")
    session_id = _optional_string(obj, "session_id")
    timeout_span = spans.get("timeout_ms")
    timeout_ms = _optional_timeout(obj, text[timeout_span[0] : timeout_span[1]] if timeout_span else None)
    created_at = _optional_timestamp(obj)
    preemptible = _optional_bool(obj)
    has_checkpoint, checkpoint = obj.get_first("checkpoint")
    delay_span = spans.get("delay_ms")
    delay_ms = _optional_delay(obj, text[delay_span[0] : delay_span[1]] if delay_span else None)
    not_before = _optional_timestamp(obj, "not_before")
    dedup_key = _optional_string(obj, "dedup_key")
    window_span = spans.get("dedup_window_ms")
    dedup_window_ms = _optional_dedup_window(obj, text[window_span[0] : window_span[1]] if window_span else None)
    dedup_mode = _optional_string(obj, "dedup_mode")

    # TaskParser.Validate
    if task_id == "":
        raise InvalidTaskError("id", "missing or empty")
    if _utf16_length(task_id) > MAX_ID_LENGTH:
        raise InvalidTaskError("id", f"{_utf16_length(task_id)} characters is over the limit of {MAX_ID_LENGTH}")
    if _ID.fullmatch(task_id) is None:
        raise InvalidTaskError(
            "id", f"'{_truncate(task_id)}' may only hold letters, digits and . _ : @ / - and must start with a letter or digit"
        )
    payload_span = spans["payload"]
    size = len(text[payload_span[0] : payload_span[1]].encode("utf-8"))
    if size > max_payload_bytes:
        raise InvalidTaskError("payload", f"{size} bytes is over the limit of {max_payload_bytes} bytes")
    if not _is_unicode(payload):
        raise InvalidTaskError(
            "payload", "not valid Unicode text: a string or key holds an unpaired surrogate escape such as \\ud800"
        )
    if has_checkpoint and checkpoint is not None and not _is_unicode(checkpoint):
        raise InvalidTaskError(
            "checkpoint", "not valid Unicode text: a string or key holds an unpaired surrogate escape such as \\ud800"
        )
    _check_length("command_type", command_type)
    _check_length("session_id", session_id)
    _check_length("dedup_key", dedup_key)
    if dedup_key == "":
        raise InvalidTaskError("dedup_key", "is empty; leave it out for no de-duplication")
    if dedup_window_ms is not None and dedup_key is None:
        raise InvalidTaskError("dedup_window_ms", "is given without dedup_key; the window belongs to a key")
    if dedup_mode is not None and dedup_mode not in DEDUP_MODES:
        raise InvalidTaskError(
            "dedup_mode", f"'{_truncate(dedup_mode)}' is not a mode; expected \"once\" (the first runs) or \"debounce\" (the last runs)"
        )
    if dedup_mode is not None and dedup_key is None:
        raise InvalidTaskError("dedup_mode", "is given without dedup_key; the mode belongs to a key")
    if delay_ms is not None and not_before is not None:
        raise InvalidTaskError(
            "delay_ms",
            "and not_before are both given; send one of them (delay_ms: milliseconds from the submit, not_before: a time)",
        )
    if dedup_mode == "debounce" and delay_ms is not None and delay_ms > (dedup_window_ms or DEFAULT_DEDUP_WINDOW_MS):
        window = f"{dedup_window_ms} ms" if dedup_window_ms is not None else f"absent ({DEFAULT_DEDUP_WINDOW_MS} ms)"
        raise InvalidTaskError(
            "dedup_window_ms",
            f"{window} is shorter than delay_ms {delay_ms} ms; in debounce mode the key remembers its latest task for the "
            "window, so give dedup_window_ms at least the delay",
        )
    if not_before is not None and _instant(not_before) - _dt.datetime.now(_dt.timezone.utc) > _dt.timedelta(milliseconds=MAX_DELAY_MS):
        raise InvalidTaskError("not_before", f"{not_before} is more than {MAX_DELAY_MS} ms (20 hours) ahead of now")

    task: Dict[str, Any] = {"id": task_id, "lane": lane, "payload": _plain(payload)}
    if command_type is not None:
        task["command_type"] = command_type
    if session_id is not None:
        task["session_id"] = session_id
    if timeout_ms is not None:
        task["timeout_ms"] = timeout_ms
    if created_at is not None:
        task["created_at"] = created_at
    if preemptible:
        task["preemptible"] = True
    if has_checkpoint and checkpoint is not None:
        task["checkpoint"] = _plain(checkpoint)
    if delay_ms is not None:
        task["delay_ms"] = delay_ms
    if not_before is not None:
        task["not_before"] = not_before
    if dedup_key is not None:
        task["dedup_key"] = dedup_key
    if dedup_window_ms is not None:
        task["dedup_window_ms"] = dedup_window_ms
    if dedup_mode is not None:
        task["dedup_mode"] = dedup_mode
    return task


def _spans(members: List[Tuple[str, int, int]]) -> Dict[str, Tuple[int, int]]:
    spans: Dict[str, Tuple[int, int]] = {}
    for raw_key, start, end in members:
        spans.setdefault(json.loads(raw_key), (start, end))
    return spans


def parse_task(raw: bytes, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> Dict[str, Any]:
    """Reads a task from the raw bytes of a message and checks it against the wire contract, as the consumer does.

    Accepts the plain JSON task and MassTransit's envelope (whose ``message`` holds the task). Returns the task as a
    dict (``id``, ``lane``, ``payload``, and the optional fields that are present and not null; unknown keys dropped),
    or raises :class:`InvalidTaskError` naming the field at fault; nothing else.
    """
    if isinstance(raw, str):
        raise TypeError("parse_task reads bytes (the message body); encode the text first")
    body = bytes(raw)
    limit = max_payload_bytes + MAX_BODY_OVERHEAD_BYTES
    if len(body) > limit:
        raise InvalidTaskError(
            "body",
            f"{len(body)} bytes is over the limit of {limit} bytes (payload limit + {MAX_BODY_OVERHEAD_BYTES // 1024} KiB)",
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidTaskError("body", "not valid UTF-8") from None
    if body.startswith(_BOM):
        raise InvalidTaskError("body", "starts with a UTF-8 byte order mark (EF BB BF); send the JSON without one")
    try:
        scan = _scan(text)
    except _JsonProblem as problem:
        if problem.too_deep:
            raise InvalidTaskError(
                "body", f"nested deeper than {MAX_DEPTH} levels (the limit, the task object and its payload included)"
            ) from None
        raise InvalidTaskError("body", f"not valid JSON ({problem})") from None
    root = json.loads(text, object_pairs_hook=_Obj, parse_int=_parse_int, parse_float=_parse_float)
    if not isinstance(root, _Obj):
        raise InvalidTaskError("body", f"expected a JSON object, got {_describe(root)}")
    _reject_repeated_keys(root)
    root_start = _WS.match(text, 0).end()  # type: ignore[union-attr]
    spans = _spans(scan.objects[root_start])
    has_types, types = root.get_first("messageType")
    has_message, message = root.get_first("message")
    has_lane, _ = root.get_first("lane")
    if has_types and isinstance(types, list) and not isinstance(types, _Obj) and has_message and isinstance(message, _Obj) and not has_lane:
        _reject_repeated_keys(message)
        root = message
        spans = _spans(scan.objects[spans["message"][0]])
    return _read(root, spans, text, max_payload_bytes)


def encode_task(task: Dict[str, Any]) -> bytes:
    """The JSON bytes the client publishes for ``task`` (UTF-8, compact); a value JSON cannot hold names its field."""
    if not isinstance(task, dict):
        raise InvalidTaskError("body", f"expected a JSON object (a dict), got {type(task).__name__}")
    for key, value in task.items():
        if not isinstance(key, str):
            raise InvalidTaskError("body", f"keys must be strings, got {key!r}")
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as ex:
            raise InvalidTaskError(key if key in _KNOWN_FIELDS else "body", f"cannot be written as JSON ({ex})") from None
    try:
        return json.dumps(task, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate: sent escaped (as JSON allows), so that the check below names the field that holds it.
        return json.dumps(task, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("utf-8")


def validate_task(task: Dict[str, Any], max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> None:
    """Checks a task built in code against the wire contract; raises :class:`InvalidTaskError` naming the field."""
    parse_task(encode_task(task), max_payload_bytes)
