"""The console's session listing: most recently written first, paged, expired ones left out."""

from __future__ import annotations

import time

from app.domain.memory.store import SessionStore


def test_recent_sessions_are_newest_first_with_their_last_write(fake_redis, keyspace):
    store = SessionStore(fake_redis, keyspace)
    now = int(time.time() * 1000)
    fake_redis.zadd(keyspace.sessions_index("acme"), {"old": now - 5000, "new": now, "mid": now - 1000})
    assert store.recent_sessions("acme", offset=0, count=2) == [("new", now), ("mid", now - 1000)]
    assert store.recent_sessions("acme", offset=2, count=2) == [("old", now - 5000)]
    # With a TTL of 3 s the session written 5 s ago has expired: pruned, not listed.
    assert [s for s, _ in store.recent_sessions("acme", offset=0, count=10, ttl_seconds=3)] == ["new", "mid"]
    assert store.count_sessions("acme", ttl_seconds=3) == 2
