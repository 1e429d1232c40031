"""Every Redis command on one due set: sessions awaiting a kind of background job.

Members are ``<tenant>:<encoded session>`` scored by when the job may run; a claimed
member's score is the end of its lease, so no other process takes it meanwhile and a
killed worker's claim lapses by itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from redis import Redis

from app.domain.redis_access import Script, translates_outages
from app.domain.scheduling.claims import CLAIM_LIBRARY, FoldClaim


@dataclass(frozen=True, slots=True)
class DueStats:
    sessions: int
    oldest_due_at: float | None  # unix seconds, None when nothing is due


@translates_outages
class DueSet:
    def __init__(self, redis: Redis, key: str) -> None:
        self._redis = redis
        self.key = key
        self._claim_one = Script(__package__, "claim_one.lua", libraries=[CLAIM_LIBRARY])
        self._claim_due = Script(__package__, "claim_due.lua")

    def claim(self, claim: FoldClaim) -> bool:
        """Mark the session due and, if its time has come and the claim has a slot, lease
        it to the caller."""
        return self._claim_one.run(self._redis, [self.key], claim.args) == 1

    def claim_due(self, *, now: float, lease_until: float, count: int) -> list[str]:
        """Lease up to ``count`` members whose due time has come."""
        members = self._claim_due.run(self._redis, [self.key], [now, lease_until, count])
        return [m.decode() if isinstance(m, bytes) else m for m in members]

    def mark_due(self, members: Iterable[str], at: float) -> None:
        """(Re)schedule members to be due at ``at`` (a hand-back, a retry, a backoff)."""
        scores = dict.fromkeys(members, at)
        if scores:
            self._redis.zadd(self.key, scores)

    def drop(self, member: str) -> None:
        self._redis.zrem(self.key, member)

    def stats(self) -> DueStats:
        pipe = self._redis.pipeline(transaction=False)
        pipe.zcard(self.key)
        pipe.zrange(self.key, 0, 0, withscores=True)
        count, oldest = pipe.execute()
        return DueStats(int(count), float(oldest[0][1]) if oldest else None)
