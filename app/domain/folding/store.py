"""A fold's Redis commands: its two session scripts (``begin_fold`` takes the lock and reads
the window, ``finish_fold`` commits, releases the lock and re-checks), the plain reads of the
window, releasing the lock of a fold that cannot finish, and the failure count. (The due set
is ``scheduling.due_set``; the session's keys and stored format are ``memory``'s.)

The lock (the session's ``:l`` key) holds a random token with an expiry, so at most one
fold runs per session across all processes and hosts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
from redis import Redis

from app.domain.folding.scripts import BeginFoldScript, FinishFoldScript, FoldCommit, FoldEnd
from app.domain.keyspace import Keyspace
from app.domain.memory.stored_format import api_message
from app.domain.redis_access import Script, is_cluster, translates_outages
from app.domain.scheduling.outcome import FinishedRun


@dataclass(frozen=True, slots=True)
class FoldState:
    """A consistent snapshot of what a fold needs."""

    gen: str | None
    messages: list[dict[str, Any]]
    summary: str | None
    watermark: int

    @classmethod
    def parse(
        cls, gen: bytes | None, summary: bytes | None, watermark: bytes | None, window: list[bytes]
    ) -> FoldState:
        """From the meta fields and the stored window elements (oldest first)."""
        return cls(
            gen=gen.decode() if gen else None,
            messages=[orjson.loads(api_message(raw)) for raw in window],
            summary=summary.decode() if summary else None,
            watermark=int(watermark or 0),
        )


@translates_outages
class FoldingStore:
    def __init__(self, redis: Redis, keyspace: Keyspace) -> None:
        self._redis = redis
        self._keys = keyspace
        # On Redis Cluster the due set lives in another slot than the session: it cannot
        # join the finishing script.
        self._cluster = is_cluster(redis)
        self._begin_fold = BeginFoldScript()
        self._finish_fold = FinishFoldScript()
        self._release = Script("app.domain.scheduling", "release_lock.lua")
        self._note_failure = Script("app.domain.scheduling", "note_failure.lua")

    def fold_state(self, tenant_id: str, session_id: str) -> FoldState:
        keys = self._keys.session(tenant_id, session_id)
        pipe = self._redis.pipeline(transaction=True)
        pipe.hmget(keys.meta, "gen", "sum", "wm")
        pipe.lrange(keys.window, 0, -1)
        (gen, summary, wm), window = pipe.execute()
        return FoldState.parse(gen, summary, wm, window)

    def begin_fold(
        self, tenant_id: str, session_id: str, *, lock_token: str, lock_seconds: float
    ) -> FoldState | None:
        """Take the session's fold lock and read what the fold needs, in one round trip.
        None while another process holds the lock; a state without ``gen`` (and no lock
        kept) when the session does not exist."""
        keys = self._keys.session(tenant_id, session_id)
        reply = self._begin_fold.run(
            self._redis, keys, lock_token=lock_token, lock_ms=int(lock_seconds * 1000)
        )
        if reply == 0:
            return None
        gen, summary, wm, *window = reply
        return FoldState.parse(gen, summary, wm, window)

    def finish_fold(
        self,
        tenant_id: str,
        session_id: str,
        commit: FoldCommit | None,
        *,
        lock_token: str,
        window_size: int,
        window_tokens: int | None,
    ) -> FinishedRun:
        """End a fold in one round trip: commit it (the new summary, the watermark, exactly
        the folded messages dropped or archived) only if nothing moved underneath, release
        the lock, and re-check the window against its bounds. On a single node the
        session's due mark is settled in the same step (``FinishedRun.settled``): dropped,
        or due now when more is due."""
        end = FoldEnd(
            lock_token=lock_token,
            commit=commit,
            window_size=window_size,
            window_tokens=window_tokens,
            due_member=self._keys.due_member(tenant_id, session_id),
            now=time.time(),
        )
        due = None if self._cluster else self._keys.due
        return self._finish_fold.run(self._redis, self._keys.session(tenant_id, session_id), end, due=due)

    def window_stats(self, tenant_id: str, session_id: str) -> tuple[int, int]:
        """(messages in the window, tokens in the window)."""
        keys = self._keys.session(tenant_id, session_id)
        pipe = self._redis.pipeline(transaction=False)
        pipe.llen(keys.window)
        pipe.hget(keys.meta, "wt")
        length, wt = pipe.execute()
        return int(length), int(wt or 0)

    def unlock(self, tenant_id: str, session_id: str, token: str) -> None:
        self._release.run(self._redis, [self._keys.session(tenant_id, session_id).lock], [token])

    def note_failure(self, tenant_id: str, session_id: str, *, gen: str, code: str) -> int | None:
        """Failures of this session's fold so far; ``None`` when the session is gone."""
        meta = self._keys.session(tenant_id, session_id).meta
        failures = int(self._note_failure.run(self._redis, [meta], [gen, code, "fails", "err"]))
        return None if failures == -1 else failures
