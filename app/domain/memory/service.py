"""Memory operations as the API offers them, composed from the session store, the window
policy and the fold scheduler. Takes plain values and raises domain errors."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from app.domain import tokens
from app.domain.errors import InvalidField, InvalidRequest, NotFound, QuotaExceeded, TooLarge
from app.domain.memory.store import AppendResult, HistoryPage, MemoryView, SessionStore
from app.domain.memory.stored_format import NewMessage
from app.domain.memory.window import overflows
from app.domain.scheduling.claims import FoldClaim
from app.domain.tenancy.authentication import Principal
from app.domain.tenancy.usage import UsageLedger

MAX_SESSION_ID_BYTES = 256


def validate_session_id(session_id: str) -> str:
    """1–256 bytes of UTF-8 without control characters (api.md §4)."""
    size = len(session_id.encode("utf-8", errors="surrogatepass"))
    if not 1 <= size <= MAX_SESSION_ID_BYTES:
        raise InvalidRequest(
            f"session id must be 1-{MAX_SESSION_ID_BYTES} bytes of UTF-8",
            code="invalid_session_id",
        )
    if any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 or 0xD800 <= ord(ch) < 0xE000 for ch in session_id):
        raise InvalidRequest("session id must not contain control characters", code="invalid_session_id")
    return session_id


def counted_message(
    role: str,
    content: str,
    metadata: dict[str, Any] | None,
    *,
    model: str,
    name: str | None = None,
    tool_call_id: str | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
) -> NewMessage:
    """A message to store, with its token count in ``model``'s encoding (role, content,
    name and tool calls: what the window's token budget holds)."""
    count = tokens.count_message_tokens(role, content, model)
    if name is not None:
        count += tokens.count_tokens(name, model)
    if tool_calls is not None:
        count += tokens.count_tokens(orjson.dumps(tool_calls).decode(), model)
    return NewMessage(role, content, metadata, count, name, tool_call_id, tool_calls)


class MessageLike(Protocol):
    role: str
    content: str | None
    metadata: dict[str, Any] | None
    name: str | None
    tool_call_id: str | None

    def tool_calls_json(self) -> list[dict[str, Any]] | None: ...


@dataclass(frozen=True, slots=True)
class Memory:
    view: MemoryView
    window_size: int

    long_term_memory: bool

    @property
    def pending_summary(self) -> int:
        """Messages neither in ``messages`` nor yet in ``context`` (a fold is due)."""
        return max(0, self.view.window_length - len(self.view.messages_json))

    @property
    def pending_index(self) -> int:
        """Messages not yet searchable (0 without long-term memory)."""
        return max(0, self.view.unindexed) if self.long_term_memory else 0


class FoldScheduler(Protocol):
    """The fold runner, as the memory service uses it (``scheduling.runner.JobRunner``)."""

    def request_fold(self, tenant_id: str, session_id: str) -> None: ...

    def prepare_claim(self, tenant_id: str, session_id: str) -> FoldClaim | None: ...

    def start_claimed(self, claim: FoldClaim) -> None: ...


class MemoryService:
    def __init__(
        self,
        store: SessionStore,
        usage: UsageLedger,
        *,
        max_messages_per_post: int,
        folds: Callable[[], FoldScheduler] | None = None,
    ) -> None:
        self._store = store
        self._usage = usage
        self._max_messages = max_messages_per_post
        self._folds = folds  # the runner is built on first use, after any fork

    def append(
        self,
        principal: Principal,
        session_id: str,
        messages: Sequence[MessageLike],
        *,
        context: str | None = None,
        idempotency_key: str | None = None,
    ) -> AppendResult:
        """Append messages to a session (created on first write) and schedule its fold when
        the window overflows the tenant's policy."""
        validate_session_id(session_id)
        policy = principal.policy
        if len(messages) > self._max_messages:
            raise TooLarge(f"at most {self._max_messages} messages per request", code="too_many_messages")
        new = []
        for index, m in enumerate(messages):
            content = m.content or ""
            if len(content.encode("utf-8", errors="surrogatepass")) > policy.max_message_bytes:
                raise TooLarge(
                    f"messages.{index}.content exceeds {policy.max_message_bytes} bytes",
                    code="message_too_large",
                )
            new.append(
                counted_message(
                    m.role,
                    content,
                    m.metadata,
                    model=policy.summary_model,
                    name=m.name,
                    tool_call_id=m.tool_call_id,
                    tool_calls=m.tool_calls_json(),
                )
            )
        # With a session quota, a tenant at its limit may still write to the sessions it
        # has; the append script refuses to create a new one (an extra round trip only
        # for tenants with a quota). Concurrent creations can overshoot by their number.
        may_create = (
            policy.max_sessions is None
            or self._store.count_sessions(principal.tenant_id, ttl_seconds=policy.session_ttl_seconds)
            < policy.max_sessions
        )
        # The append script claims the fold itself when the window overflows (single node).
        folds = self._folds() if self._folds is not None else None
        claim = folds.prepare_claim(principal.tenant_id, session_id) if folds is not None else None
        result = self._store.append(
            principal.tenant_id,
            session_id,
            new,
            context=context,
            ttl_seconds=policy.session_ttl_seconds,
            idempotency_key=idempotency_key,
            may_create=may_create,
            fold_claim=claim,
            window_size=policy.window_size,
            window_tokens=policy.window_tokens,
            indexed=policy.long_term_memory,
        )
        if result.key_reused:
            raise InvalidField(
                "this Idempotency-Key was used with a different body in the last 24 hours; "
                "use a new key for a new request",
                code="idempotency_key_reused",
            )
        if result.refused:
            raise QuotaExceeded(f"the tenant's quota of {policy.max_sessions} sessions is reached")
        if folds is None:
            return result
        if result.fold_claimed:
            assert claim is not None
            folds.start_claimed(claim)
        elif result.fold_claimed is None and overflows(
            result.window_length,
            result.window_tokens,
            window_size=policy.window_size,
            window_tokens=policy.window_tokens,
        ):
            # Redis Cluster: the claim is a request of its own.
            folds.request_fold(principal.tenant_id, session_id)
        return result

    def read(self, principal: Principal, session_id: str) -> Memory:
        validate_session_id(session_id)
        size = principal.policy.window_size
        view = self._store.read(principal.tenant_id, session_id, limit=size)
        return Memory(view, size, principal.policy.long_term_memory)

    def delete(self, principal: Principal, session_id: str) -> None:
        validate_session_id(session_id)
        self._store.delete_session(principal.tenant_id, session_id)

    def get_message(self, principal: Principal, session_id: str, message_id: int) -> bytes:
        validate_session_id(session_id)
        raw = self._store.get_message(principal.tenant_id, session_id, message_id)
        if raw is None:
            raise NotFound("message not found in the window or the archive", code="message_not_found")
        return raw

    def delete_message(self, principal: Principal, session_id: str, message_id: int) -> None:
        validate_session_id(session_id)
        if not self._store.delete_message(principal.tenant_id, session_id, message_id):
            raise NotFound("message not found in the window or the archive", code="message_not_found")

    def history(
        self, principal: Principal, session_id: str, *, before: int | None, limit: int
    ) -> HistoryPage:
        """The whole history (window and archive), newest first, paged backwards."""
        validate_session_id(session_id)
        return self._store.history(principal.tenant_id, session_id, before=before, limit=limit)

    def list_sessions(self, principal: Principal, *, page: int, size: int) -> list[str]:
        return self._store.list_sessions(
            principal.tenant_id,
            offset=(page - 1) * size,
            count=size,
            ttl_seconds=principal.policy.session_ttl_seconds,
        )

    def recent_sessions(
        self, tenant_id: str, *, ttl_seconds: int, offset: int, count: int
    ) -> tuple[list[tuple[str, int]], int]:
        """A page of the tenant's sessions, most recently written first, and how many it has."""
        page = self._store.recent_sessions(tenant_id, offset=offset, count=count, ttl_seconds=ttl_seconds)
        return page, self._store.count_sessions(tenant_id, ttl_seconds=ttl_seconds)

    def usage(self, tenant_id: str, *, ttl_seconds: int) -> dict[str, Any]:
        sessions = self._store.count_sessions(tenant_id, ttl_seconds=ttl_seconds)
        return self._usage.report(tenant_id, sessions=sessions)
