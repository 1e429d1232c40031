"""Fixtures for the memory tests: the session store and the usage ledger over fakeredis,
and helpers to build messages."""

from __future__ import annotations

import pytest

from app.domain.memory.store import SessionStore
from app.domain.memory.stored_format import NewMessage
from app.domain.tenancy.usage import UsageLedger

TENANT = "acme"


def message(
    content: str, *, role: str = "Human", tokens: int = 10, metadata: dict | None = None
) -> NewMessage:
    return NewMessage(role, content, metadata, tokens)


def messages(*contents: str, tokens: int = 10) -> list[NewMessage]:
    """Alternating Human/AI messages with the given contents, ``tokens`` tokens each."""
    return [message(c, role="Human" if i % 2 == 0 else "AI", tokens=tokens) for i, c in enumerate(contents)]


@pytest.fixture
def store(fake_redis, keyspace) -> SessionStore:
    return SessionStore(fake_redis, keyspace)


@pytest.fixture
def usage(fake_redis, keyspace) -> UsageLedger:
    return UsageLedger(fake_redis, keyspace)
