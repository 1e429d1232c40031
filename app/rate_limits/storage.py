"""flask-limiter's Redis storage, with the request's count and its headers in one round trip.

flask-limiter counts a request in ``before_request`` (the sliding-window-counter strategy
runs one Lua script that may acquire) and then, in ``after_request``, reads the same window
again with a second script only to fill ``X-RateLimit-Remaining``/``-Reset``: two round trips
and two script runs per request.

This storage's acquire script returns the window it just looked at (after its own
increment), and the header read that follows in the same thread for the same key is served
from that answer. Nothing else changes: the keys, the script's decision and the strategy's
arithmetic are limits' own; the headers describe the window as of this request's hit, which
is what they mean (a second read could only add other requests' hits in between).

The memory append and read routes go further: their charge runs inside the store's own
round trip (``in_store``), and ``remember`` hands this storage the window it saw, so
the header hook (``app.rate_limits.headers``) is answered the same way.

It is registered under the ``recollect+redis`` / ``recollect+rediss`` schemes through limits'
storage registry (a ``Storage`` subclass with ``STORAGE_SCHEME``), its documented extension
point. Redis Cluster keeps limits' own cluster storage.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from limits.storage import RedisStorage

from app.domain.ratelimit.charge import ChargeScript, LimitHit, RateCharge, RateWindow


class OneTripRedisStorage(RedisStorage):
    """``RedisStorage`` whose sliding-window acquire also answers the next window read."""

    STORAGE_SCHEME = ["recollect+redis", "recollect+rediss"]

    @classmethod
    def uri_for(cls, redis_url: str) -> str | None:
        """The storage URI that selects this class for a single-node Redis URL."""
        if redis_url.startswith(("redis://", "rediss://")):
            return "recollect+" + redis_url
        return None

    def __init__(self, uri: str, **options: Any) -> None:
        # limits picks redis-py or valkey from the scheme; ours is always redis-py.
        super().__init__(uri.removeprefix("recollect+"), **options)
        self._seen = threading.local()

    def initialize_storage(self, uri: str) -> None:
        super().initialize_storage(uri)
        # limits' sliding-window acquire, returning the window it saw.
        self._charge_script = ChargeScript()

    def charge(self, charge: RateCharge) -> RateWindow:
        """Run a charge on its own round trip."""
        return self._charge_script.run(self.get_connection(), charge)

    def limit_hit(self, key: str, amount: int, expiry: int, cost: int = 1) -> LimitHit:
        """The Redis keys and numbers limits would use to acquire ``key``'s window."""
        return LimitHit(
            self.prefixed_key(self._previous_window_key(key)),
            self.prefixed_key(self._current_window_key(key)),
            amount,
            expiry,
            cost,
        )

    def remember(self, key: str, expiry: int, window: RateWindow) -> None:
        """Keep the window an acquire just saw, for the header read that follows."""
        self._seen.window = (key, expiry, window.sliding_window, time.monotonic())

    def acquire_sliding_window_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        window = self.charge(RateCharge((self.limit_hit(key, limit, expiry, amount),)))
        self.remember(key, expiry, window)
        return window.admitted

    def get_sliding_window(self, key: str, expiry: int) -> tuple[int, float, int, float]:
        seen = getattr(self._seen, "window", None)
        if seen is not None and seen[0] == key and seen[1] == expiry:
            self._seen.window = None  # one answer per acquire: a later read goes to Redis
            previous_count, previous_ttl, current_count, current_ttl = seen[2]
            # The TTLs have run on since the acquire read them, as a fresh read would show.
            elapsed = time.monotonic() - seen[3]
            return (
                previous_count,
                max(0.0, previous_ttl - elapsed),
                current_count,
                max(0.0, current_ttl - elapsed),
            )
        return super().get_sliding_window(key, expiry)
