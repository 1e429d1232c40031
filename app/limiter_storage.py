"""flask-limiter's Redis storage, with the request's count and its headers in one round trip.

flask-limiter counts a request in ``before_request`` (the sliding-window-counter strategy
runs one Lua script that may acquire) and then, in ``after_request``, reads the same window
again with a second script only to fill ``X-RateLimit-Remaining``/``-Reset``: two round trips
and two script runs per request, about a third of the limiter's cost in a worker's profile.

This storage's acquire script returns the window it just looked at (after its own
increment), and the header read that follows in the same thread for the same key is served
from that answer. Nothing else changes: the keys, the script's decision and the strategy's
arithmetic are limits' own; the headers describe the window as of this request's hit, which
is what they mean (a second read could only add other requests' hits in between).

It is registered under the ``recollect+redis`` / ``recollect+rediss`` schemes through limits'
storage registry (a ``Storage`` subclass with ``STORAGE_SCHEME``), its documented extension
point. Redis Cluster keeps limits' own cluster storage.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from limits.storage import RedisStorage

# limits' acquire_sliding_window.lua, returning the window it saw (after the increment when
# it acquired) alongside the decision. Time is in milliseconds here, as in the original.
ACQUIRE_AND_READ_SLIDING_WINDOW = """
local limit = tonumber(ARGV[1])
local expiry = tonumber(ARGV[2]) * 1000
local amount = tonumber(ARGV[3])

local current_ttl = tonumber(redis.call('pttl', KEYS[2]))
if current_ttl > 0 and current_ttl < expiry then
    -- Current window expired, shift it to the previous window
    redis.call('rename', KEYS[2], KEYS[1])
    redis.call('set', KEYS[2], 0, 'PX', current_ttl + expiry)
end

local previous_count = tonumber(redis.call('get', KEYS[1])) or 0
local previous_ttl = tonumber(redis.call('pttl', KEYS[1])) or 0
local current_count = tonumber(redis.call('get', KEYS[2])) or 0
current_ttl = tonumber(redis.call('pttl', KEYS[2])) or 0
if previous_ttl <= 0 then
    previous_ttl = 0
end
if current_ttl <= 0 then
    current_ttl = 0
end

local acquired = 0
local weighted_count = math.floor(previous_count * previous_ttl / expiry) + current_count
if amount <= limit and (weighted_count + amount) <= limit then
    acquired = 1
    if redis.call('exists', KEYS[2]) == 1 then
        current_count = redis.call('incrby', KEYS[2], amount)
    else
        redis.call('set', KEYS[2], amount, 'PX', expiry * 2)
        current_count = amount
        current_ttl = expiry * 2
    end
end
return {acquired, previous_count, previous_ttl, current_count, current_ttl}
"""


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
        self.lua_acquire_and_read_sliding_window = self.get_connection().register_script(
            ACQUIRE_AND_READ_SLIDING_WINDOW
        )

    def acquire_sliding_window_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        previous_key = self.prefixed_key(self._previous_window_key(key))
        current_key = self.prefixed_key(self._current_window_key(key))
        acquired, previous_count, previous_ttl, current_count, current_ttl = (
            self.lua_acquire_and_read_sliding_window([previous_key, current_key], [limit, expiry, amount])
        )
        window = (
            int(previous_count),
            float(previous_ttl) / 1000,
            int(current_count),
            float(current_ttl) / 1000,
        )
        self._seen.window = (key, expiry, window, time.monotonic())
        return bool(acquired)

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
