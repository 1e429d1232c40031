"""Fail fast while Redis is known to be down: a process-wide circuit breaker.

A request touches Redis several times (authentication on a cache miss, the rate limiter,
the store, the limiter's headers). When Redis *hangs* — a stalled fsync, a fork on a large
dataset, a paused VM — every one of those calls would wait out its own socket timeout, and
redis-py's retry would double each wait (docs/benchmarks.md, the chaos run). So the first
call that proves Redis unreachable opens the breaker, and for ``open_seconds`` every other
call in this process (the rest of the same request, every other request thread, the
limiter's client, the summarizer) fails at once with :class:`RedisUnavailable`, which the
stores raise as ``StoreUnavailable``: the usual 503 with ``Retry-After``. After that window
the next call simply tries again (half-open): no background probing, no state beyond one
timestamp.

What proves Redis unreachable: a failed connect (refused, or timed out), a timeout on an
established connection, and ``LOADING`` after a restart. What does not: a reset on an
established connection — after a Redis restart every pooled connection is stale once, and
the one quick retry on a fresh connection is what should decide.

It lives on the connection class (``ConnectionPool(connection_class=...)``) so the store's
client and flask-limiter's client share one breaker without wrapping any call site.
Libraries such as pybreaker count failures around a callable; here the call sites are
inside redis-py and flask-limiter, so the hook has to be the connection itself.
Cluster mode (redis-py's ``RedisCluster``) manages its own node connections and is not
guarded: a node failure there is handled by the cluster client's own failover.
"""

from __future__ import annotations

import time
from typing import Any

import redis
from redis.connection import AbstractConnection

OPEN_SECONDS = 0.5


class RedisUnavailable(redis.exceptions.ConnectionError):
    """Raised without touching the network while the breaker is open."""


class RedisBreaker:
    """One per app (shared by the store's and the limiter's connection pools)."""

    def __init__(self, open_seconds: float = OPEN_SECONDS) -> None:
        self.open_seconds = open_seconds
        # A single float written and read without a lock: under the GIL the assignment is
        # atomic, and two threads tripping at once only both push the deadline forward.
        self._open_until = 0.0

    @property
    def is_open(self) -> bool:
        return time.monotonic() < self._open_until

    def trip(self) -> None:
        self._open_until = time.monotonic() + self.open_seconds

    def raise_if_open(self) -> None:
        if self.is_open:
            raise RedisUnavailable("Redis failed moments ago; failing fast until it is retried")

    def guard(self, connection_class: type[AbstractConnection]) -> type[AbstractConnection]:
        """A subclass of ``connection_class`` (plain, TLS or unix socket) wired to this breaker."""
        breaker = self

        class Guarded(connection_class):  # type: ignore[valid-type, misc]
            def connect_check_health(self, *args: Any, **kwargs: Any) -> None:
                if self._sock is None:
                    breaker.raise_if_open()
                try:
                    return super().connect_check_health(*args, **kwargs)
                except RedisUnavailable:
                    raise
                except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                    breaker.trip()
                    raise

            def send_packed_command(self, command: Any, check_health: bool = True) -> None:
                breaker.raise_if_open()
                try:
                    return super().send_packed_command(command, check_health)
                except redis.exceptions.TimeoutError:
                    breaker.trip()
                    raise

            def read_response(self, *args: Any, **kwargs: Any) -> Any:
                try:
                    return super().read_response(*args, **kwargs)
                except (redis.exceptions.TimeoutError, redis.exceptions.BusyLoadingError):
                    breaker.trip()
                    raise

        Guarded.__name__ = Guarded.__qualname__ = f"Guarded{connection_class.__name__}"
        return Guarded

    def pool(self, url: str, **options: Any) -> redis.ConnectionPool:
        """``redis.BlockingConnectionPool.from_url(url, **options)`` with guarded connections."""
        pool = redis.BlockingConnectionPool.from_url(url, **options)
        # from_url picked the class for the scheme (TCP, TLS, unix); connections are made
        # lazily, so swapping the class now covers every one of them.
        pool.connection_class = self.guard(pool.connection_class)
        return pool
