"""Typed request and response models, mirroring the server's schemas (``app/schemas.py``).

Field names and types follow the server's OpenAPI document exactly; the SDK's tests build
that document and fail on any drift. Every model accepts fields it does not know
(``extra="allow"``), so a newer server that adds a field does not break an older client.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


# --- messages ---------------------------------------------------------------------------


class ToolFunction(_Model):
    """The function an assistant asks to call: its name and JSON-encoded arguments."""

    name: str
    arguments: str = ""


class ToolCall(_Model):
    """OpenAI's ``tool_calls`` item on an assistant message."""

    id: str
    type: str = "function"
    function: ToolFunction


class Message(_Model):
    """A message to append. Any role string is stored unchanged (``user``, ``assistant``,
    ``system``, ``tool``, or LangChain's ``Human``/``AI``). ``content`` may be None only on
    a message with ``tool_calls``."""

    role: str
    content: str | None = None
    metadata: dict[str, Any] | None = None
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: list[ToolCall] | None = None


class StoredMessage(_Model):
    """A stored message as the server returns it: with its id (increasing within the
    session), creation time and token count. Optional fields are None when not set."""

    id: int
    role: str
    content: str
    created_at: str = Field(description="UTC, ISO 8601 with milliseconds")
    token_count: int
    metadata: dict[str, Any] | None = None
    name: str | None = None
    tool_call_id: str | None = None
    # The server documents these as plain objects; they are what was posted as ToolCall.
    tool_calls: list[ToolCall] | None = None


# --- memory -----------------------------------------------------------------------------


class AppendResult(_Model):
    """The answer to an append: the ids given to the messages, in order. ``replayed`` is
    True when the server recognised the Idempotency-Key and returned the first answer
    instead of appending again (its ``Idempotent-Replayed`` header)."""

    status: Literal["Ok"]
    message_ids: list[int]
    replayed: bool = False


class Memory(_Model):
    """A session's memory: the window (newest first), the running summary of older messages
    (None when there is none), LLM tokens spent summarizing, and work still pending."""

    messages: list[StoredMessage]
    context: str | None
    tokens: int
    pending_summary: int
    pending_index: int


class HistoryPage(_Model):
    """One page of the whole history (window and archive), newest first; pass
    ``next_before`` as ``before`` for the next page (None at the start of the session)."""

    messages: list[StoredMessage]
    next_before: int | None


# --- search and context -----------------------------------------------------------------


SearchMode = Literal["auto", "keyword", "vector", "hybrid"]


class RetrievalHit(_Model):
    """A message close to the query; ``dist`` 0 is identical, smaller is closer."""

    role: str
    content: str
    dist: float
    id: int
    created_at: str
    metadata: dict[str, Any] | None = None


class SearchHit(RetrievalHit):
    """A tenant-wide search hit: a retrieval hit and the session it belongs to."""

    session_id: str


class ContextMessage(_Model):
    """One message of an assembled context, in OpenAI's chat format."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str | None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class Context(_Model):
    """The context to send to a chat model, oldest first, within ``max_tokens``."""

    messages: list[ContextMessage]
    tokens: int
    model: str
    encoding: str
    omitted: int

    def openai_messages(self) -> list[dict[str, Any]]:
        """The messages as plain dicts for an OpenAI-compatible chat API (unset fields out)."""
        return [m.model_dump(exclude_none=True) for m in self.messages]


class ImportResult(_Model):
    """What an import restored: ``messages`` stored (``window`` + ``archived``), ``dropped``
    (already summarized, and long-term memory is off), ``last_id`` (the next appended
    message gets a higher id) and whether a fold is due (``fold_due``)."""

    status: Literal["Ok"]
    session_id: str
    messages: int
    window: int
    archived: int
    dropped: int
    last_id: int
    fold_due: bool


# --- account ----------------------------------------------------------------------------


class CurrentKey(_Model):
    """Who the caller is: the tenant and the key id (None in drop-in mode)."""

    tenant_id: str
    key_id: str | None


class UsageCounter(_Model):
    total: int
    today: int


class Usage(_Model):
    """A tenant's consumption, all-time and on the UTC ``day``."""

    tenant_id: str
    day: str
    sessions: int
    messages: UsageCounter
    llm_calls: UsageCounter
    prompt_tokens: UsageCounter
    completion_tokens: UsageCounter
    rate_limited: UsageCounter


# --- administration ---------------------------------------------------------------------


class TenantPolicy(_Model):
    """A tenant's policy overrides (api.md §5). Only the fields you set are sent: set a
    field to None explicitly to return it to the server's default in an update."""

    rate_limit: str | None = None
    session_ttl_seconds: int | None = None
    window_size: int | None = None
    window_tokens: int | None = None
    max_message_bytes: int | None = None
    max_sessions: int | None = None
    summary_model: str | None = None
    summary_prompt: str | None = None
    summary_token_budget_daily: int | None = None
    long_term_memory: bool | None = None


class Tenant(_Model):
    """A tenant: ``policy`` holds its overrides, ``effective_policy`` every field's value."""

    id: str
    name: str
    created_at: str
    policy: dict[str, Any]
    effective_policy: dict[str, Any]


class TenantCreated(_Model):
    """A new tenant and its first key; ``api_key`` is shown this once."""

    tenant: Tenant
    key_id: str
    api_key: str


class TenantDeleted(_Model):
    """``keys_removed`` counts the Redis keys of the tenant's data that were erased."""

    status: Literal["Ok"]
    keys_removed: int


class KeyCreated(_Model):
    """A new key; ``api_key`` is shown this once (the server keeps only its hash)."""

    key_id: str
    api_key: str


class KeyInfo(_Model):
    """A key as listed: never the secret."""

    key_id: str
    prefix: str
    label: str | None
    created_at: str
    last_used_at: str | None


# Envelopes the server wraps lists and single tenants in; the clients unwrap them.


class TenantEnvelope(_Model):
    tenant: Tenant


class TenantList(_Model):
    tenants: list[Tenant]


class KeyList(_Model):
    keys: list[KeyInfo]
