"""Every Redis command of the fold schedule: the due set, the per-session fold lock and
the failure count.

The due set (``rc:due``) holds ``<tenant>:<encoded session>`` members scored by when their
fold may run; a claimed member's score is the end of its lease. The lock (the session's
``:l`` key) holds a random token with an expiry, so at most one fold runs per session
across all processes and hosts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from redis import Redis

from app.domain.folding.claims import CLAIM_LIBRARY, FoldClaim
from app.domain.keyspace import Keyspace
from app.domain.redis_access import Script, translates_outages


@dataclass(frozen=True, slots=True)
class DueStats:
    sessions: int
    oldest_due_at: float | None  # unix seconds, None when nothing is due


@translates_outages
class FoldingStore:
    def __init__(self, redis: Redis, keyspace: Keyspace) -> None:
        self._redis = redis
        self._keys = keyspace
        self._claim_one = Script(__package__, "claim_one.lua", libraries=[CLAIM_LIBRARY])
        self._claim_due = Script(__package__, "claim_due.lua")
        self._release = Script(__package__, "release_lock.lua")
        self._note_failure = Script(__package__, "note_failure.lua")

    # --- the due set -------------------------------------------------------------------

    def claim(self, claim: FoldClaim) -> bool:
        """Mark the session due and, if its time has come and the claim has a slot, lease
        it to the caller."""
        return self._claim_one.run(self._redis, [self._keys.due], claim.args) == 1

    def claim_due(self, *, now: float, lease_until: float, count: int) -> list[str]:
        """Lease up to ``count`` members whose due time has come."""
        members = self._claim_due.run(self._redis, [self._keys.due], [now, lease_until, count])
        return [m.decode() if isinstance(m, bytes) else m for m in members]

    def mark_due(self, members: Iterable[str], at: float) -> None:
        """(Re)schedule members to be due at ``at`` (a hand-back, a retry, a backoff)."""
        scores = dict.fromkeys(members, at)
        if scores:
            self._redis.zadd(self._keys.due, scores)

    def drop(self, member: str) -> None:
        self._redis.zrem(self._keys.due, member)

    def due_stats(self) -> DueStats:
        pipe = self._redis.pipeline(transaction=False)
        pipe.zcard(self._keys.due)
        pipe.zrange(self._keys.due, 0, 0, withscores=True)
        count, oldest = pipe.execute()
        return DueStats(int(count), float(oldest[0][1]) if oldest else None)

    # --- one session's fold ------------------------------------------------------------

    def lock(self, tenant_id: str, session_id: str, token: str, *, seconds: float) -> bool:
        lock_key = self._keys.session(tenant_id, session_id).lock
        return bool(self._redis.set(lock_key, token, nx=True, px=int(seconds * 1000)))

    def unlock(self, tenant_id: str, session_id: str, token: str) -> None:
        self._release.run(self._redis, [self._keys.session(tenant_id, session_id).lock], [token])

    def note_failure(self, tenant_id: str, session_id: str, *, gen: str, code: str) -> int | None:
        """Failures of this session's fold so far; ``None`` when the session is gone."""
        meta = self._keys.session(tenant_id, session_id).meta
        failures = int(self._note_failure.run(self._redis, [meta], [gen, code]))
        return None if failures == -1 else failures
