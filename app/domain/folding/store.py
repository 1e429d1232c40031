"""A fold's Redis commands besides its two session scripts (``SessionStore.begin_fold``,
which takes the lock, and ``finish_fold``, which releases it): releasing the lock of a fold
that cannot finish, and the failure count. (The due set is ``scheduling.due_set``.)

The lock (the session's ``:l`` key) holds a random token with an expiry, so at most one
fold runs per session across all processes and hosts.
"""

from __future__ import annotations

from redis import Redis

from app.domain.keyspace import Keyspace
from app.domain.redis_access import Script, translates_outages


@translates_outages
class FoldingStore:
    def __init__(self, redis: Redis, keyspace: Keyspace) -> None:
        self._redis = redis
        self._keys = keyspace
        self._release = Script("app.domain.scheduling", "release_lock.lua")
        self._note_failure = Script("app.domain.scheduling", "note_failure.lua")

    def unlock(self, tenant_id: str, session_id: str, token: str) -> None:
        self._release.run(self._redis, [self._keys.session(tenant_id, session_id).lock], [token])

    def note_failure(self, tenant_id: str, session_id: str, *, gen: str, code: str) -> int | None:
        """Failures of this session's fold so far; ``None`` when the session is gone."""
        meta = self._keys.session(tenant_id, session_id).meta
        failures = int(self._note_failure.run(self._redis, [meta], [gen, code, "fails", "err"]))
        return None if failures == -1 else failures
