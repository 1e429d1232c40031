"""Fixtures for the domain's unit tests: an in-process Redis (fakeredis with Lua) per test."""

from __future__ import annotations

import fakeredis
import pytest

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
def schedule(fake_redis, keyspace) -> DueSet:
    """The fold due set."""
    return DueSet(fake_redis, keyspace.due)


@pytest.fixture
def defaults() -> PolicyDefaults:
    """The shipped defaults, as the app builds them from an empty environment."""
    from app.extensions import policy_defaults
    from config import Settings

    return policy_defaults(Settings())
