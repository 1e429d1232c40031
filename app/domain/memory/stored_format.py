"""How a message is stored in a session's window, and how it is read back as the API's JSON.

Each window element is the message's API representation as compact JSON with one-letter
keys, ``{"id":<n>,"r":…,"c":…,"t":…,"n":…[,"name":…][,"tool_call_id":…][,"tool_calls":…]
[,"metadata":…]}`` (28 bytes a message less than the API's names; OpenAI's rare tool fields
keep their names). The append script writes the ``{"id":<n>,`` head; reads restore the
API's names by replacing bytes, without parsing, and scripts find the id with one pattern
match. Elements written before the short keys (``"role"`` after the id) pass through as
they are.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class NewMessage:
    role: str
    content: str
    metadata: dict[str, Any] | None
    token_count: int
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


def stored_payload(message: NewMessage, created_at: str) -> bytes:
    """The element without its leading ``{``: the append script prepends ``{"id":<n>,``."""
    body: dict[str, Any] = {
        "r": message.role,
        "c": message.content,
        "t": created_at,
        "n": message.token_count,
    }
    if message.name is not None:
        body["name"] = message.name
    if message.tool_call_id is not None:
        body["tool_call_id"] = message.tool_call_id
    if message.tool_calls is not None:
        body["tool_calls"] = message.tool_calls
    if message.metadata:
        body["metadata"] = message.metadata
    return orjson.dumps(body)[1:]


# Short stored key → the API's, each with the bytes around it that only a key can have: a
# string value holds a quote only escaped, so before the optional fields (always after
# these four) the first match of each is the key itself.
_API_KEYS = (
    (b',"r":"', b',"role":"'),
    (b',"c":"', b',"content":"'),
    (b',"t":"', b',"created_at":"'),
    (b',"n":', b',"token_count":'),
)


def api_message(stored: bytes) -> bytes:
    """A stored window element as the API's JSON."""
    comma = stored.find(b",")
    if not stored.startswith(b'"r":"', comma + 1):
        return stored
    for short, name in _API_KEYS:
        stored = stored.replace(short, name, 1)
    return stored


def id_prefix(message_id: int) -> bytes:
    """The bytes every stored form of message ``message_id`` starts with."""
    return b'{"id":%d,' % message_id


def message_id(stored: bytes) -> int:
    """The id at the head of a stored element (``{"id":<n>,``)."""
    return int(stored[6 : stored.index(b",", 6)])


def request_digest(messages: Sequence[NewMessage], context: str | None) -> str:
    """A digest of what an append asks for (not when): a retry with the same Idempotency-Key
    must carry the same messages and summary, or it is refused rather than replayed."""
    asked = [[m.role, m.content, m.metadata, m.name, m.tool_call_id, m.tool_calls] for m in messages]
    body = orjson.dumps([asked, context], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(body).hexdigest()[:32]


def storable_metadata(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """``value`` if it can be stored as a message's metadata; ``ValueError`` otherwise.

    orjson decodes deeper nesting than it encodes (255 levels): refused when read, so the
    client gets a 422 instead of a 500. Checked as stored: inside the message, one level down.
    """
    if value is not None:
        try:
            orjson.dumps({"metadata": value})
        except (TypeError, orjson.JSONEncodeError):
            raise ValueError("must be a JSON object nested at most 254 levels deep") from None
    return value
