"""Failed authentications, limited per client address and per key id."""

from __future__ import annotations

import threading
import time

from cachetools import TLRUCache
from flask_limiter import Limiter
from limits import parse

from app.domain.errors import StoreUnavailable
from app.domain.redis_access import REDIS_UNAVAILABLE

AUTH_FAILURE_LIMIT = "20/minute"
_auth_failure_limit = parse(AUTH_FAILURE_LIMIT)


class AuthFailureGuard:
    """Limits *failing* authentications, never a valid one.

    Each failure is counted in Redis (shared by all workers) against every subject it
    names: the client address, and the key id of a well-formed key (a guesser spread over
    many addresses still meets the per-key count). Past ``AUTH_FAILURE_LIMIT`` a subject is
    blocked locally until its window resets: its failures are answered 429 with no Redis
    round trip. A correct credential is checked before any of this and always passes, so a
    neighbour behind the same NAT address, or a guesser aiming at a tenant's key id, cannot
    lock that tenant or the operator out.
    """

    def __init__(self, limiter: Limiter) -> None:
        self._limiter = limiter
        self._lock = threading.Lock()
        # subject -> unix time the block ends; each entry expires then.
        self._blocked: TLRUCache[str, float] = TLRUCache(
            maxsize=100_000, ttu=lambda _key, until, _now: until, timer=time.time
        )

    def failed(self, address: str | None, key_id: str | None = None) -> int | None:
        """Count one failure; the seconds to wait if a subject is now over the limit."""
        subjects = [f"addr:{address or '-'}"]
        if key_id is not None:
            subjects.append(f"key:{key_id}")
        waits = [wait for subject in subjects if (wait := self._count(subject)) is not None]
        return max(waits) if waits else None

    def _count(self, subject: str) -> int | None:
        with self._lock:
            until = self._blocked.get(subject)
        if until is not None:
            return max(1, int(until - time.time()) + 1)
        strategy = self._limiter.limiter
        try:
            if strategy.hit(_auth_failure_limit, "authfail", subject):
                return None
            reset, _ = strategy.get_window_stats(_auth_failure_limit, "authfail", subject)
        except REDIS_UNAVAILABLE as exc:
            raise StoreUnavailable("storage is unavailable, retry shortly", cause=type(exc).__name__) from exc
        with self._lock:
            self._blocked[subject] = reset
        return max(1, int(reset - time.time()) + 1)
