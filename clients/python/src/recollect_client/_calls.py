"""Every route as a :class:`Call`: what to send and how to read the answer.

The sync and async clients differ only in how they send; each of their methods builds its
request here, so the two cannot drift apart.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter

from recollect_client.models import (
    AppendResult,
    Context,
    CurrentKey,
    HistoryPage,
    ImportResult,
    KeyCreated,
    KeyInfo,
    KeyList,
    Memory,
    Message,
    RetrievalHit,
    SearchHit,
    SearchMode,
    StoredMessage,
    Tenant,
    TenantCreated,
    TenantDeleted,
    TenantEnvelope,
    TenantList,
    TenantPolicy,
    Usage,
)

T = TypeVar("T")

MessageLike = Message | Mapping[str, Any]
PolicyLike = TenantPolicy | Mapping[str, Any]
ExportLine = dict[str, Any]


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request. ``replay_safe``: sending it twice does no harm, so it may be resent
    after a failure that left unknown whether the server acted (a read timeout, a dropped
    connection). ``missing_after_replay``: a 404 after such a failure means the earlier
    attempt did it (a delete), so the call succeeds with ``parse`` never called."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: Mapping[str, Any] | None = None
    json: Any = None
    content: bytes | None = None
    headers: Mapping[str, str] | None = None
    replay_safe: bool = True
    missing_after_replay: bool = False


def segment(value: str | int) -> str:
    """A path segment, percent-encoded whole: session ids may hold ``/``, ``?``, ``#``, ``%``.
    A segment of dots only is encoded too, or URL normalisation would treat ``..`` as the
    parent directory."""
    text = str(value)
    if not text:
        raise ValueError("a session, tenant or key id cannot be empty")
    quoted = quote(text, safe="")
    return quoted.replace(".", "%2E") if quoted.strip(".") == "" else quoted


def _params(**values: Any) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


def _model(model: Any) -> Callable[[httpx.Response], Any]:
    adapter: TypeAdapter[Any] = TypeAdapter(model)
    return lambda response: adapter.validate_json(response.content)


def _nothing(response: httpx.Response) -> None:
    return None


_MEMORY = _model(Memory)
_STORED = _model(StoredMessage)
_HISTORY = _model(HistoryPage)
_SESSIONS = _model(list[str])
_RETRIEVAL = _model(list[RetrievalHit])
_SEARCH = _model(list[SearchHit])
_CONTEXT = _model(Context)
_CURRENT_KEY = _model(CurrentKey)
_USAGE = _model(Usage)
_IMPORT = _model(ImportResult)
_TENANT_CREATED = _model(TenantCreated)
_TENANT_DELETED = _model(TenantDeleted)
_KEY_CREATED = _model(KeyCreated)
_TENANT_LIST = TypeAdapter(TenantList)
_TENANT_ENVELOPE = TypeAdapter(TenantEnvelope)
_KEY_LIST = TypeAdapter(KeyList)


def _append_result(response: httpx.Response) -> AppendResult:
    result = AppendResult.model_validate_json(response.content)
    result.replayed = response.headers.get("idempotent-replayed", "").lower() == "true"
    return result


def _tenant_list(response: httpx.Response) -> list[Tenant]:
    return _TENANT_LIST.validate_json(response.content).tenants


def _tenant(response: httpx.Response) -> Tenant:
    return _TENANT_ENVELOPE.validate_json(response.content).tenant


def _key_list(response: httpx.Response) -> list[KeyInfo]:
    return _KEY_LIST.validate_json(response.content).keys


def message_json(message: MessageLike) -> dict[str, Any]:
    """A message as the server takes it; validated here so a typo fails before sending."""
    model = message if isinstance(message, Message) else Message.model_validate(message)
    return model.model_dump(mode="json", exclude_none=True)


def policy_json(policy: PolicyLike | None) -> dict[str, Any]:
    """The policy fields that were set, explicit Nones included (they reset a field)."""
    if policy is None:
        return {}
    model = policy if isinstance(policy, TenantPolicy) else TenantPolicy.model_validate(policy)
    return model.model_dump(mode="json", exclude_unset=True)


def ndjson(lines: Iterable[Mapping[str, Any] | str | bytes]) -> bytes:
    """Export lines (parsed dicts, or raw lines as read from a file) as one NDJSON body."""
    out = bytearray()
    for line in lines:
        if isinstance(line, bytes):
            raw = line.strip()
        elif isinstance(line, str):
            raw = line.strip().encode()
        else:
            raw = json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode()
        if raw:
            out += raw + b"\n"
    return bytes(out)


def parse_ndjson_line(line: str) -> ExportLine | None:
    return json.loads(line) if line.strip() else None


# --- tenant routes ----------------------------------------------------------------------


def append(
    session_id: str,
    messages: Sequence[MessageLike],
    context: str | None,
    idempotency_key: str | None,
) -> Call[AppendResult]:
    if isinstance(messages, (Message, Mapping, str)):
        raise TypeError("messages must be a sequence of messages")
    body: dict[str, Any] = {"messages": [message_json(m) for m in messages]}
    if context is not None:
        body["context"] = context
    # A key on every append, reused by every resend of it: the server appends once and
    # replays its first answer to the others (api.md §2), so a retry never duplicates.
    key = idempotency_key or str(uuid.uuid4())
    return Call(
        "POST",
        f"sessions/{segment(session_id)}/memory",
        _append_result,
        json=body,
        headers={"Idempotency-Key": key},
    )


def get_memory(session_id: str) -> Call[Memory]:
    return Call("GET", f"sessions/{segment(session_id)}/memory", _MEMORY)


def delete_memory(session_id: str) -> Call[None]:
    return Call("DELETE", f"sessions/{segment(session_id)}/memory", _nothing)


def list_sessions(page: int | None, size: int | None) -> Call[list[str]]:
    return Call("GET", "sessions", _SESSIONS, params=_params(page=page, size=size))


def get_message(session_id: str, message_id: int) -> Call[StoredMessage]:
    return Call("GET", f"sessions/{segment(session_id)}/messages/{int(message_id)}", _STORED)


def delete_message(session_id: str, message_id: int) -> Call[None]:
    return Call(
        "DELETE",
        f"sessions/{segment(session_id)}/messages/{int(message_id)}",
        _nothing,
        missing_after_replay=True,
    )


def history(session_id: str, before: int | None, limit: int | None) -> Call[HistoryPage]:
    return Call(
        "GET",
        f"sessions/{segment(session_id)}/messages",
        _HISTORY,
        params=_params(before=before, limit=limit),
    )


def retrieve(session_id: str, query: str, k: int | None, mode: SearchMode | None) -> Call[list[RetrievalHit]]:
    body = {"text": query, **_params(k=k, mode=mode)}
    return Call("POST", f"sessions/{segment(session_id)}/retrieval", _RETRIEVAL, json=body)


def search(
    query: str,
    k: int | None,
    mode: SearchMode | None,
    session_ids: Sequence[str] | None,
    metadata: Mapping[str, Any] | None,
) -> Call[list[SearchHit]]:
    body = {
        "text": query,
        **_params(
            k=k,
            mode=mode,
            session_ids=list(session_ids) if session_ids is not None else None,
            metadata=dict(metadata) if metadata is not None else None,
        ),
    }
    return Call("POST", "search", _SEARCH, json=body)


def get_context(
    session_id: str, model: str, max_tokens: int, query: str | None, k: int | None
) -> Call[Context]:
    params = _params(model=model, max_tokens=max_tokens, query=query, k=k)
    return Call("GET", f"sessions/{segment(session_id)}/context", _CONTEXT, params=params)


def current_key() -> Call[CurrentKey]:
    return Call("GET", "keys/current", _CURRENT_KEY)


def usage() -> Call[Usage]:
    return Call("GET", "usage", _USAGE)


def export_session(session_id: str) -> Call[None]:
    return Call("GET", f"sessions/{segment(session_id)}/export", _nothing)


def import_session(session_id: str, lines: Iterable[Mapping[str, Any] | str | bytes]) -> Call[ImportResult]:
    # Not replay-safe: a resend after the server imported would meet 409 session_exists.
    return Call(
        "POST",
        f"sessions/{segment(session_id)}/import",
        _IMPORT,
        content=ndjson(lines),
        headers={"Content-Type": "application/x-ndjson"},
        replay_safe=False,
    )


# --- admin routes -----------------------------------------------------------------------


def create_tenant(tenant_id: str, name: str | None, policy: PolicyLike | None) -> Call[TenantCreated]:
    body = {"id": tenant_id, **_params(name=name), **policy_json(policy)}
    return Call("POST", "admin/tenants", _TENANT_CREATED, json=body, replay_safe=False)


def list_tenants() -> Call[list[Tenant]]:
    return Call("GET", "admin/tenants", _tenant_list)


def get_tenant(tenant_id: str) -> Call[Tenant]:
    return Call("GET", f"admin/tenants/{segment(tenant_id)}", _tenant)


def update_tenant(tenant_id: str, name: str | None, policy: PolicyLike | None) -> Call[Tenant]:
    body = {**_params(name=name), **policy_json(policy)}
    return Call("PATCH", f"admin/tenants/{segment(tenant_id)}", _tenant, json=body)


def delete_tenant(tenant_id: str) -> Call[TenantDeleted]:
    # Not replay-safe: the resend of a delete that happened would answer 404.
    return Call("DELETE", f"admin/tenants/{segment(tenant_id)}", _TENANT_DELETED, replay_safe=False)


def create_key(tenant_id: str, label: str | None) -> Call[KeyCreated]:
    # Not replay-safe: a resend would mint a second key whose secret nobody sees.
    return Call(
        "POST",
        f"admin/tenants/{segment(tenant_id)}/keys",
        _KEY_CREATED,
        json=_params(label=label),
        replay_safe=False,
    )


def list_keys(tenant_id: str) -> Call[list[KeyInfo]]:
    return Call("GET", f"admin/tenants/{segment(tenant_id)}/keys", _key_list)


def revoke_key(tenant_id: str, key_id: str) -> Call[None]:
    return Call(
        "DELETE",
        f"admin/tenants/{segment(tenant_id)}/keys/{segment(key_id)}",
        _nothing,
        missing_after_replay=True,
    )


def tenant_usage(tenant_id: str) -> Call[Usage]:
    return Call("GET", f"admin/tenants/{segment(tenant_id)}/usage", _USAGE)


def export_tenant(tenant_id: str) -> Call[None]:
    return Call("GET", f"admin/tenants/{segment(tenant_id)}/export", _nothing)
