"""The export format, NDJSON: a session line, then one line per message, oldest first.

``{"type":"session","session_id","summary","tokens","created_at","updated_at","last_id",
"summarized_through"}`` then ``{"type":"message","id","role","content","created_at"
[,"name"][,"tool_call_id"][,"tool_calls"][,"metadata"]}`` — a message is the API's JSON
without ``token_count`` (derived: the importing tenant's model counts it again).
``summarized_through`` is the last id the summary covers: the messages up to it were
folded (the archive), the ones above it form the window.

Reading is strict and line-numbered: every error names the line and why, and reading
never holds more than one line.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from app.domain.clock import utc_iso
from app.domain.errors import InvalidField, InvalidRequest, TooLarge
from app.domain.memory.scripts import MAX_MESSAGE_ID
from app.domain.memory.stored_format import api_message, storable_metadata
from app.domain.memory.tool_calls import ToolCall

MAX_TOKENS = 2**53  # what a JSON number holds exactly


class LineError:
    """Mixed into the errors that name a line: ``line`` and ``reason`` for reports."""

    line: int
    reason: str

    def _at(self, line: int, reason: str) -> str:
        self.line, self.reason = line, reason
        return f"line {line}: {reason}"


class InvalidLine(LineError, InvalidField):
    """A well-formed line whose fields are invalid (422)."""

    code = "invalid_import_line"

    def __init__(self, line: int, reason: str, *, code: str | None = None) -> None:
        super().__init__(self._at(line, reason), code=code)


class MalformedLine(LineError, InvalidRequest):
    """A line that is not JSON (400)."""

    code = "invalid_json"

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(self._at(line, reason))


class LineTooLarge(LineError, TooLarge):
    """A line or a message over the limits (413)."""

    code = "message_too_large"

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(self._at(line, reason))


# --- the lines, as read ---------------------------------------------------------------------


class SessionLine(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    type: Literal["session"]
    session_id: str | None = None
    summary: str | None = None
    tokens: int = Field(0, ge=0, le=MAX_TOKENS)
    created_at: str | None = None
    updated_at: str | None = None
    last_id: int = Field(0, ge=0, le=MAX_MESSAGE_ID)
    summarized_through: int = Field(0, ge=0, le=MAX_MESSAGE_ID)


class MessageLine(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    type: Literal["message"]
    id: int | None = Field(None, ge=1, le=MAX_MESSAGE_ID)
    role: str = Field(min_length=1, max_length=256)
    content: str | None = None
    created_at: str | None = None
    metadata: dict[str, Any] | None = None
    name: str | None = Field(None, min_length=1, max_length=256)
    tool_call_id: str | None = Field(None, min_length=1, max_length=256)
    tool_calls: list[ToolCall] | None = Field(None, max_length=128)

    @field_validator("metadata")
    @classmethod
    def _storable(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return storable_metadata(value)


@dataclass(frozen=True, slots=True)
class SessionRecord:
    line: int
    session_id: str | None
    summary: str | None
    tokens: int
    created_ms: int | None
    updated_ms: int | None
    last_id: int
    summarized_through: int


@dataclass(frozen=True, slots=True)
class MessageRecord:
    line: int
    id: int
    role: str
    content: str
    created_ms: int | None
    metadata: dict[str, Any] | None = None
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


Record = SessionRecord | MessageRecord


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def parse_timestamp(value: str) -> int:
    """ISO 8601 → unix ms (no zone: UTC); ``ValueError`` outside 1970–9999."""
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    ms = (parsed - _EPOCH) // _ONE_MS
    if ms < 0:
        raise ValueError("before 1970")
    return ms


def _timestamp(line: int, field: str, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_timestamp(value)
    except (ValueError, OverflowError):
        raise InvalidLine(line, f"{field}: not an ISO 8601 time from 1970 on ({value[:40]!r})") from None


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "line"
    return f"{loc}: {first['msg']}"


def read_lines(stream: Any, *, max_line_bytes: int) -> Iterator[bytes]:
    """The lines of a binary stream (``readline``), each at most ``max_line_bytes``."""
    number = 0
    while True:
        raw = stream.readline(max_line_bytes + 1)
        if not raw:
            return
        number += 1
        if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
            raise LineTooLarge(number, f"longer than {max_line_bytes} bytes")
        yield raw


def read_records(lines: Iterable[bytes]) -> Iterator[Record]:
    """Parse and check NDJSON lines: the first is a session line; message ids strictly
    increase within a session (a missing id is the previous one plus one). Blank lines are
    skipped (they still count for line numbers)."""
    previous_id: int | None = None
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise MalformedLine(number, "not valid JSON") from None
        kind = data.get("type") if isinstance(data, dict) else None
        if kind == "session":
            previous_id = 0
            yield _session_record(number, data)
        elif kind == "message":
            if previous_id is None:
                raise InvalidLine(number, "the first line must be a session line")
            record = _message_record(number, data, previous_id)
            previous_id = record.id
            yield record
        else:
            raise InvalidLine(number, "expected an object whose type is 'session' or 'message'")


def _session_record(number: int, data: dict[str, Any]) -> SessionRecord:
    try:
        line = SessionLine.model_validate(data)
    except ValidationError as exc:
        raise InvalidLine(number, _describe(exc)) from None
    return SessionRecord(
        number,
        line.session_id,
        line.summary,
        line.tokens,
        _timestamp(number, "created_at", line.created_at),
        _timestamp(number, "updated_at", line.updated_at),
        line.last_id,
        line.summarized_through,
    )


def _message_record(number: int, data: dict[str, Any], previous_id: int) -> MessageRecord:
    try:
        line = MessageLine.model_validate(data)
    except ValidationError as exc:
        raise InvalidLine(number, _describe(exc)) from None
    if line.content is None and not line.tool_calls:
        raise InvalidLine(number, "content: required (it may be null only with tool_calls)")
    message_id = line.id if line.id is not None else previous_id + 1
    if message_id <= previous_id:
        raise InvalidLine(number, f"id {message_id} is not above the previous message's ({previous_id})")
    if message_id > MAX_MESSAGE_ID:
        raise InvalidLine(number, f"id: at most {MAX_MESSAGE_ID}")
    return MessageRecord(
        number,
        message_id,
        line.role,
        line.content or "",
        _timestamp(number, "created_at", line.created_at),
        line.metadata,
        line.name,
        line.tool_call_id,
        [call.model_dump() for call in line.tool_calls] if line.tool_calls else None,
    )


# --- the lines, as written ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionHeader:
    """A session's own fields, as an export starts it."""

    session_id: str
    summary: str | None
    tokens: int
    created_ms: int | None
    updated_ms: int | None
    last_id: int
    summarized_through: int


def session_line(header: SessionHeader) -> bytes:
    return (
        orjson.dumps(
            {
                "type": "session",
                "session_id": header.session_id,
                "summary": header.summary,
                "tokens": header.tokens,
                "created_at": utc_iso(header.created_ms) if header.created_ms is not None else None,
                "updated_at": utc_iso(header.updated_ms) if header.updated_ms is not None else None,
                "last_id": header.last_id,
                "summarized_through": header.summarized_through,
            }
        )
        + b"\n"
    )


def message_line(stored: bytes) -> bytes:
    """A stored window or archive element as its export line."""
    message = orjson.loads(api_message(stored))
    message.pop("token_count", None)
    return orjson.dumps({"type": "message", **message}) + b"\n"
