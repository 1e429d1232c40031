"""Fixtures for the rate charge tests: a clock that drives fakeredis' key expiry, and the
``limits`` package's own Redis storage and sliding-window-counter strategy on the same
fakeredis, as the independent oracle the charge must agree with."""

from __future__ import annotations

import time
import types

import fakeredis._socket._base as fakeredis_socket
import limits.strategies
import pytest
from limits.storage import RedisStorage
from limits.strategies import SlidingWindowCounterRateLimiter

from app.domain.ratelimit.charge import ChargeScript

from .oracle import Clock


@pytest.fixture
def clock(monkeypatch) -> Clock:
    """Freeze the time fakeredis expires keys by (it reads ``time.time()`` once per
    command) and the time limits' strategy computes resets from; tests move it."""
    clock = Clock()
    frozen = types.SimpleNamespace(time=clock.time, monotonic=time.monotonic, sleep=time.sleep)
    monkeypatch.setattr(fakeredis_socket, "time", frozen)
    monkeypatch.setattr(limits.strategies, "time", frozen)
    return clock


@pytest.fixture
def storage(fake_redis) -> RedisStorage:
    """limits' own Redis storage, on the test's fakeredis."""
    return RedisStorage("redis://", connection_pool=fake_redis.connection_pool)


@pytest.fixture
def limiter(storage) -> SlidingWindowCounterRateLimiter:
    """flask-limiter's strategy for the app: the sliding window counter."""
    return SlidingWindowCounterRateLimiter(storage)


@pytest.fixture
def script() -> ChargeScript:
    return ChargeScript()
