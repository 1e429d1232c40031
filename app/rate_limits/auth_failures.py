"""Failed authentications, limited per client address."""

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
    """Counts failed authentications per client address in Redis (shared by all workers)
    and, once an address is over ``AUTH_FAILURE_LIMIT``, blocks it locally until the window
    resets — so a blocked address costs no Redis round trip, and a good request costs none
    either: only failures are counted.
    """

    def __init__(self, limiter: Limiter) -> None:
        self._limiter = limiter
        self._lock = threading.Lock()
        # address -> unix time the block ends; each entry expires then.
        self._blocked: TLRUCache[str, float] = TLRUCache(
            maxsize=100_000, ttu=lambda _key, until, _now: until, timer=time.time
        )

    def retry_after(self, address: str | None) -> int | None:
        with self._lock:
            until = self._blocked.get(address or "-")
        if until is None:
            return None
        return max(1, int(until - time.time()) + 1)

    def failed(self, address: str | None) -> int | None:
        """Count one failure; the seconds to wait if the address is now over the limit."""
        key = address or "-"
        strategy = self._limiter.limiter
        try:
            if strategy.hit(_auth_failure_limit, "authfail", key):
                return None
            reset, _ = strategy.get_window_stats(_auth_failure_limit, "authfail", key)
        except REDIS_UNAVAILABLE as exc:
            raise StoreUnavailable("storage is unavailable, retry shortly", cause=type(exc).__name__) from exc
        with self._lock:
            self._blocked[key] = reset
        return max(1, int(reset - time.time()) + 1)
