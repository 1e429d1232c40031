"""Fixtures for the transfer tests: the session and transfer stores over fakeredis, a
principal whose policy each test may change, and helpers that write sessions the way the
API does (appends, then a fold committed into the archive)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from app.domain.folding.scripts import FoldCommit
from app.domain.memory.store import SessionStore
from app.domain.memory.stored_format import NewMessage
from app.domain.tenancy.authentication import Principal
from app.domain.tenancy.policy import Policy
from app.domain.transfer.service import TransferService
from app.domain.transfer.store import TransferStore

TENANT = "acme"


@pytest.fixture
def sessions(fake_redis, keyspace) -> SessionStore:
    return SessionStore(fake_redis, keyspace)


@pytest.fixture
def transfer_store(fake_redis, keyspace) -> TransferStore:
    return TransferStore(fake_redis, keyspace)


@pytest.fixture
def transfer(transfer_store, sessions) -> TransferService:
    return TransferService(transfer_store, sessions)


@pytest.fixture
def make_principal(defaults) -> Callable[..., Principal]:
    """The tenant ``acme`` under the shipped defaults, with ``overrides``."""

    def make(tenant_id: str = TENANT, **overrides: object) -> Principal:
        return Principal(tenant_id, None, defaults.resolve(Policy(**overrides)))

    return make


@pytest.fixture
def principal(make_principal) -> Principal:
    return make_principal()


@pytest.fixture
def write_session(fold_store, sessions, fake_redis, keyspace) -> Callable[..., None]:
    """``write_session(session_id, contents, folded=n)``: append ``contents`` (Human/AI
    alternating, 5 tokens each), then fold the oldest ``folded`` of them into the archive
    as a fold commits."""

    def write(
        session_id: str,
        contents: list[str],
        *,
        folded: int = 0,
        summary: str = "a summary",
        tenant_id: str = TENANT,
        metadata: dict | None = None,
    ) -> None:
        messages = [
            NewMessage("Human" if i % 2 == 0 else "AI", c, metadata, 5) for i, c in enumerate(contents)
        ]
        sessions.append(tenant_id, session_id, messages)
        if not folded:
            return
        state = fold_store.begin_fold(tenant_id, session_id, lock_token="token", lock_seconds=30)
        assert state is not None
        finished = fold_store.finish_fold(
            tenant_id,
            session_id,
            FoldCommit(
                gen=state.gen or "",
                expected_watermark=state.watermark,
                tokens_spent=42,
                summary=summary,
                folded_tokens=5 * folded,
                folded_ids=[m["id"] for m in state.messages[:folded]],
                archive=True,
            ),
            lock_token="token",
            window_size=1000,
            window_tokens=None,
        )
        assert finished.status == "ok"

    return write
