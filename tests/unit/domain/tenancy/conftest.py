"""Fixtures for the tenancy tests: the store over fakeredis, a hand-moved clock, and the
cache, registry and authenticator of one process built on them."""

from __future__ import annotations

import pytest

from app.domain.tenancy.authentication import Authenticator
from app.domain.tenancy.cache import TenancyCache
from app.domain.tenancy.store import TenancyStore
from app.domain.tenancy.tenants import TenantRegistry
from app.domain.tenancy.usage import UsageLedger

from .fakes import CountingStore, FakeClock

CACHE_SECONDS = 1.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(fake_redis, keyspace) -> TenancyStore:
    return TenancyStore(fake_redis, keyspace)


@pytest.fixture
def counting(store) -> CountingStore:
    return CountingStore(store)


@pytest.fixture
def cache(counting, defaults, clock) -> TenancyCache:
    return TenancyCache(counting, defaults, seconds=CACHE_SECONDS, clock=clock)  # type: ignore[arg-type]


@pytest.fixture
def sleeps() -> list[float]:
    """What the registry asked to sleep for (it never really sleeps in these tests)."""
    return []


@pytest.fixture
def registry(counting, cache, defaults, sleeps) -> TenantRegistry:
    return TenantRegistry(counting, cache, defaults, sleep=sleeps.append)  # type: ignore[arg-type]


@pytest.fixture
def authenticator(counting, cache, clock) -> Authenticator:
    return Authenticator(counting, cache, clock=clock)  # type: ignore[arg-type]


@pytest.fixture
def other_cache(store, defaults, clock) -> TenancyCache:
    """The cache of another worker process: same Redis, its own entries."""
    return TenancyCache(store, defaults, seconds=CACHE_SECONDS, clock=clock)


@pytest.fixture
def usage(fake_redis, keyspace) -> UsageLedger:
    return UsageLedger(fake_redis, keyspace)
