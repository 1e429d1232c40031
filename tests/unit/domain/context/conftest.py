"""Fixtures for the context service: the session store over fakeredis, a tenant, a stub
search service that ranks the messages a test chooses, and a fold into the archive."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from app.domain.context.service import ContextService
from app.domain.folding.scripts import FoldCommit
from app.domain.memory.store import SessionStore
from app.domain.memory.stored_format import NewMessage
from app.domain.search.service import Hit
from app.domain.tenancy.authentication import Principal
from app.domain.tenancy.policy import Policy

TENANT = "acme"
OTHER = "globex"


@dataclass
class StubSearch:
    """``SearchService.retrieve`` as the context service uses it: the first ``k`` messages
    of ``ranking`` (most relevant first), like a real search asked for ``k``."""

    ranking: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)

    def retrieve(self, principal: Principal, session_id: str, text: str, *, k: int, mode: str) -> list[Hit]:
        self.calls.append(
            {"tenant": principal.tenant_id, "session_id": session_id, "text": text, "k": k, "mode": mode}
        )
        return [Hit(session_id, m, float(rank)) for rank, m in enumerate(self.ranking[:k])]


@pytest.fixture
def sessions(fake_redis, keyspace) -> SessionStore:
    return SessionStore(fake_redis, keyspace)


@pytest.fixture
def search() -> StubSearch:
    return StubSearch()


@pytest.fixture
def service(sessions, search) -> ContextService:
    return ContextService(sessions, search)  # type: ignore[arg-type]


@pytest.fixture
def principal(defaults) -> Callable[..., Principal]:
    """``principal(tenant=TENANT, **policy)``: long-term memory on, a window of 4."""

    def make(tenant: str = TENANT, **overrides: Any) -> Principal:
        fields: dict[str, Any] = {"window_size": 4, "long_term_memory": True, "session_ttl_seconds": 0}
        fields.update(overrides)
        return Principal(tenant, "key-1", defaults.resolve(Policy(**fields)))

    return make


@pytest.fixture
def append(sessions) -> Callable[..., list[int]]:
    """Append messages (``NewMessage`` or plain contents, alternating Human/AI) without
    folding, however long the window grows. Returns their ids."""

    def append(
        session_id: str, *messages: NewMessage | str, tenant: str = TENANT, context: str | None = None
    ) -> list[int]:
        new = [
            m if isinstance(m, NewMessage) else NewMessage("Human" if i % 2 == 0 else "AI", m, None, 10)
            for i, m in enumerate(messages)
        ]
        return sessions.append(tenant, session_id, new, context=context, window_size=4, indexed=True).ids

    return append


@pytest.fixture
def fold(fold_store, fake_redis, keyspace, sessions) -> Callable[..., None]:
    """Fold the ``count`` oldest window messages into the archive under a new summary
    (what a fold does with long-term memory on)."""

    def fold(session_id: str, count: int, summary: str, *, tenant: str = TENANT) -> None:
        state = fold_store.begin_fold(tenant, session_id, lock_token="fold-token", lock_seconds=30)
        assert state is not None and state.gen is not None
        folded = [m["id"] for m in state.messages[:count]]
        commit = FoldCommit(state.gen, state.watermark, 0, summary, 10 * count, folded, archive=True)
        finished = fold_store.finish_fold(
            tenant, session_id, commit, lock_token="fold-token", window_size=1000, window_tokens=None
        )
        assert finished.status == "ok"

    return fold


@pytest.fixture
def stored(sessions) -> Callable[..., dict[int, dict[str, Any]]]:
    """Every message of a session, window and archive, as the API's JSON, by id."""

    def stored(session_id: str, *, tenant: str = TENANT) -> dict[int, dict[str, Any]]:
        page = sessions.history(tenant, session_id, before=None, limit=10_000)
        return {m["id"]: m for m in (orjson.loads(raw) for raw in page.messages_json)}

    return stored
