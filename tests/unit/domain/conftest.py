"""Fixtures for the domain's unit tests: an in-process Redis (fakeredis with Lua) per test."""

from __future__ import annotations

import fakeredis
import pytest

from app.domain.folding.store import FoldingStore
from app.domain.keyspace import Keyspace
from app.domain.scheduling.due_set import DueSet
from app.domain.tenancy.policy import PolicyDefaults


@pytest.fixture
def fake_redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


@pytest.fixture
def keyspace() -> Keyspace:
    return Keyspace("rc")


@pytest.fixture
def fold_store(fake_redis, keyspace) -> FoldingStore:
    """A fold's Redis commands; also the plain reader of a session's window in other tests."""
    return FoldingStore(fake_redis, keyspace)


@pytest.fixture
def schedule(fake_redis, keyspace) -> DueSet:
    """The fold due set."""
    return DueSet(fake_redis, keyspace.due)


@pytest.fixture
def defaults() -> PolicyDefaults:
    """The shipped defaults, as the app builds them from an empty environment."""
    from app.extensions import policy_defaults
    from config import Settings

    return policy_defaults(Settings())
