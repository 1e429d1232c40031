"""Test doubles shared by the tenancy tests: a clock to move by hand, a store that counts
what it is asked, and a Redis that is down."""

from __future__ import annotations

from collections import Counter
from typing import Any

import fakeredis

from app.domain.tenancy.store import TenancyStore


class FakeClock:
    """A monotonic clock the test moves by hand (for TTL caches and throttles)."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class CountingStore:
    """A TenancyStore that counts each method called on it (``calls["read_tenant"]``)."""

    def __init__(self, store: TenancyStore) -> None:
        self._store = store
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if not callable(attr):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return attr(*args, **kwargs)

        return counted


def unreachable_redis() -> fakeredis.FakeRedis:
    """A client whose server is down: every command raises redis' ConnectionError."""
    server = fakeredis.FakeServer()
    server.connected = False
    return fakeredis.FakeRedis(server=server)
