"""Request models: the single source of truth for what the API accepts."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator, model_validator

from app.domain.memory.stored_format import storable_metadata
from app.domain.memory.tool_calls import ToolCall
from app.domain.tenancy.policy import Policy
from app.domain.transfer.format import MessageLine, SessionLine


class MessageIn(BaseModel):
    # MotorHead ignores unknown fields in a message; so do we.
    model_config = ConfigDict(extra="ignore", strict=True)

    role: str = Field(min_length=1, max_length=256)
    content: str | None = Field(None, description="required unless the message has tool_calls")
    metadata: dict[str, Any] | None = None
    name: str | None = Field(None, min_length=1, max_length=256)
    tool_call_id: str | None = Field(None, min_length=1, max_length=256)
    tool_calls: list[ToolCall] | None = Field(None, max_length=128)

    @model_validator(mode="after")
    def _has_content(self) -> MessageIn:
        if self.content is None and not self.tool_calls:
            raise ValueError("content is required (it may be null only with tool_calls)")
        return self

    def tool_calls_json(self) -> list[dict[str, Any]] | None:
        """The calls as stored; an empty list is no calls."""
        return [call.model_dump() for call in self.tool_calls] if self.tool_calls else None

    @field_validator("metadata")
    @classmethod
    def _storable(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return storable_metadata(value)


class MemoryIn(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    messages: list[MessageIn]
    context: str | None = None


class SessionsQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    page: int = Field(1, ge=1, le=1_000_000)
    size: int = Field(10, ge=1, le=100)
    namespace: str | None = None


SearchMode = Literal["auto", "keyword", "vector", "hybrid"]


class RetrievalIn(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    text: str = Field(min_length=1, max_length=8192)
    k: int = Field(10, ge=1, le=50)
    mode: SearchMode = "auto"


class SearchIn(RetrievalIn):
    session_ids: list[str] | None = Field(None, min_length=1, max_length=100)
    metadata: dict[str, Any] | None = Field(None, max_length=16)


class HistoryQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    before: int | None = Field(None, ge=1)
    limit: int = Field(50, ge=1, le=100)


class ContextQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=200)
    max_tokens: int = Field(ge=1, le=10_000_000)
    query: str | None = Field(None, min_length=1, max_length=8192)
    k: int = Field(5, ge=1, le=50)


class TenantCreate(Policy):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=63)
    name: str | None = Field(None, min_length=1, max_length=200)


class TenantPatch(Policy):
    """Every field optional; a policy field sent as ``null`` returns to the default."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str | None = Field(None, min_length=1, max_length=200)


# --- responses (documented in /openapi.json; extra fields stay allowed) -----------------


class MessageOut(BaseModel):
    id: int
    role: str
    content: str
    created_at: str = Field(description="UTC, ISO 8601 with milliseconds")
    token_count: int
    metadata: dict[str, Any] | None = Field(None, description="present only when set")
    name: str | None = Field(None, description="present only when set")
    tool_call_id: str | None = Field(None, description="present only when set")
    tool_calls: list[dict[str, Any]] | None = Field(None, description="present only when set")


class MemoryOut(BaseModel):
    messages: list[MessageOut] = Field(description="the newest window_size messages, newest first")
    context: str | None = Field(description="the running summary of older messages; never 'NONE'")
    tokens: int = Field(description="LLM tokens spent summarizing this session")
    pending_summary: int = Field(description="stored messages in neither messages nor context yet")
    pending_index: int = Field(description="messages not yet searchable (0 without long-term memory)")


class AppendOut(BaseModel):
    status: Literal["Ok"]
    message_ids: list[int]


class StatusOut(BaseModel):
    status: Literal["Ok"]


class ErrorBody(BaseModel):
    code: str = Field(description="stable snake_case identifier")
    message: str


class ErrorOut(BaseModel):
    error: ErrorBody


class SessionListOut(RootModel[list[str]]):
    """Session ids, least recently written first (MotorHead's bare array)."""


class RetrievalHit(BaseModel):
    role: str
    content: str
    dist: float = Field(description="0 = identical; smaller is closer")
    id: int
    created_at: str
    metadata: dict[str, Any] | None = Field(None, description="present only when set")


class RetrievalOut(RootModel[list[RetrievalHit]]):
    """At most ``k`` hits, closest first."""


class SearchHit(RetrievalHit):
    session_id: str


class SearchOut(RootModel[list[SearchHit]]):
    """At most ``k`` hits across the caller's sessions, closest first."""


class HistoryOut(BaseModel):
    messages: list[MessageOut] = Field(description="newest first")
    next_before: int | None = Field(description="pass as `before` for the next page; null at the start")


class ContextMessage(BaseModel):
    role: Literal["system", "user", "assistant", "tool"]
    content: str | None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class ContextOut(BaseModel):
    messages: list[ContextMessage] = Field(description="OpenAI chat format, oldest first")
    tokens: int = Field(description="counted as OpenAI's cookbook counts chat messages")
    model: str
    encoding: str
    omitted: int = Field(description="window messages left out to fit max_tokens")


class KeyCurrentOut(BaseModel):
    tenant_id: str
    key_id: str | None = Field(description="null in drop-in mode")


class UsageCounter(BaseModel):
    total: int
    today: int


class UsageOut(BaseModel):
    tenant_id: str
    day: str = Field(description="the UTC day of the `today` figures")
    sessions: int
    messages: UsageCounter
    llm_calls: UsageCounter
    prompt_tokens: UsageCounter
    completion_tokens: UsageCounter
    rate_limited: UsageCounter


class TenantOut(BaseModel):
    id: str
    name: str
    created_at: str
    policy: dict[str, Any] = Field(description="the fields this tenant overrides")
    effective_policy: dict[str, Any] = Field(description="overrides laid over the defaults")


class TenantEnvelope(BaseModel):
    tenant: TenantOut


class TenantCreatedOut(BaseModel):
    tenant: TenantOut
    key_id: str
    api_key: str = Field(description="shown once; only its SHA-256 is stored")


class TenantListOut(BaseModel):
    tenants: list[TenantOut]


class TenantDeletedOut(BaseModel):
    status: Literal["Ok"]
    keys_removed: int = Field(
        description="Redis keys of the tenant's data that were erased (sessions, archives, "
        "indexes, usage, API key records), not the number of API keys"
    )


class KeyCreatedOut(BaseModel):
    key_id: str
    api_key: str = Field(description="shown once; only its SHA-256 is stored")


class KeyInfoOut(BaseModel):
    key_id: str
    prefix: str
    label: str | None
    created_at: str
    last_used_at: str | None


class KeyListOut(BaseModel):
    keys: list[KeyInfoOut]


class NowOut(BaseModel):
    now: int = Field(description="the server's clock, unix milliseconds")


class HealthOut(BaseModel):
    status: str


class TransferLine(RootModel[SessionLine | MessageLine]):
    """One NDJSON line of an export (and of an import's body): a session line, then one
    message line per message, oldest first. In an import every field but ``type``, ``role``
    and ``content`` may be left out (a message's id is then the previous one plus one)."""


class ImportOut(BaseModel):
    status: Literal["Ok"]
    session_id: str
    messages: int = Field(description="messages stored (window + archived)")
    window: int
    archived: int
    dropped: int = Field(description="already summarized, and long-term memory is off: not kept")
    last_id: int = Field(description="the next appended message gets a higher id")
    fold_due: bool = Field(description="the window is over the policy: a fold will summarize it")
