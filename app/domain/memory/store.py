"""The session store: every Redis command on session data.

A session's keys share one hash tag (``keyspace``): the window ``:w`` (a list, oldest
first, of the messages not yet folded; ``stored_format``), the meta hash ``:m`` (``next``
last id given; ``gen``, a nonce set when the session is created, so a fold that started
before a DELETE never writes into the session a later POST recreates; ``sum`` summary;
``tok`` LLM tokens spent; ``wm`` watermark, the last folded id; ``folded``; ``wt`` tokens
in the window; ``crt``/``upd``), the idempotency hash ``:i`` (key digest →
``<ms>:<first id>:<last id>:<body digest>``), the fold lock ``:l`` (``folding.store``), and
with long-term memory the archive ``:a`` (filled by folds, read here for history) and the
search keys (``search.store``), which appends keep alive with the session's TTL and a
DELETE erases with it.

Writes that must be atomic are Lua scripts (``scripts``) that on Redis Cluster touch only
the session's slot. On a single node the append script also does the tenant-wide
bookkeeping (session index, usage count), claims a due fold and runs a riding rate charge
(``ratelimit.riding``), so a POST is one round trip, and a GET one pipeline. On Cluster the
bookkeeping follows in a second round trip.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from redis import Redis

from app.domain.clock import now_ms, utc_day, utc_iso
from app.domain.keyspace import Keyspace
from app.domain.memory.scripts import (
    AppendArgs,
    AppendResult,
    AppendScript,
    DeleteMessageScript,
    EraseSessionScript,
    TenantWideKeys,
)
from app.domain.memory.stored_format import (
    NewMessage,
    api_message,
    id_prefix,
    message_id,
    request_digest,
    stored_payload,
)
from app.domain.ratelimit.charge import ChargeScript
from app.domain.ratelimit.riding import take_ride
from app.domain.redis_access import is_cluster, translates_outages
from app.domain.scheduling.claims import FoldClaim

IDEMPOTENCY_SECONDS = 24 * 3600


@dataclass(frozen=True, slots=True)
class MemoryView:
    """What GET returns: the raw JSON of the newest messages (newest first) and the rest."""

    messages_json: list[bytes]
    context: str | None
    tokens: int
    window_length: int
    unindexed: int = 0  # ids given but not yet indexed (deleted ones included)


@dataclass(frozen=True, slots=True)
class HistoryPage:
    messages_json: list[bytes]  # newest first
    next_before: int | None


@translates_outages
class SessionStore:
    def __init__(
        self, redis: Redis, keyspace: Keyspace, *, vector_prefix: Callable[[str, str], str] | None = None
    ) -> None:
        """``vector_prefix`` (tenant, session) → the key prefix of the session's per-message
        vector hashes when vectors live in RediSearch (``search.redisearch``), else ``""``."""
        self._redis = redis
        self._keys = keyspace
        self._vector_prefix = vector_prefix
        # On Redis Cluster the tenant-wide keys and the rate counters live in other slots
        # than the session: they cannot join its script.
        self._cluster = is_cluster(redis)
        self._append = AppendScript()
        self._delete_message = DeleteMessageScript()
        self._erase_session = EraseSessionScript()
        self._charge = ChargeScript()

    # --- writes ------------------------------------------------------------------------

    def append(
        self,
        tenant_id: str,
        session_id: str,
        messages: Sequence[NewMessage],
        *,
        context: str | None = None,
        ttl_seconds: int = 0,
        idempotency_key: str | None = None,
        may_create: bool = True,
        fold_claim: FoldClaim | None = None,
        window_size: int = 0,
        window_tokens: int | None = None,
        indexed: bool = False,
    ) -> AppendResult:
        """Append messages (ids assigned here, increasing) and optionally replace the
        summary. With ``may_create=False`` a session that does not exist yet is refused
        (nothing is written). With ``fold_claim`` (single node) a window now over
        ``window_size``/``window_tokens`` is claimed for folding in the same script
        (``AppendResult.fold_claimed``; None when no claim was attempted). A riding rate
        charge that refuses raises ``RateLimited`` and writes nothing. With ``indexed``
        (long-term memory on) the session is marked due for indexing."""
        now = now_ms()
        created_at = utc_iso(now)
        payloads = [stored_payload(m, created_at) for m in messages]
        keys = self._keys.session(tenant_id, session_id)
        tenant_wide = None
        ride = None
        if self._cluster:
            fold_claim = None  # the due set is in another slot: the caller claims afterwards
        else:
            tenant_wide = TenantWideKeys(
                self._keys.sessions_index(tenant_id),
                self._keys.usage(tenant_id),
                self._keys.due,
                self._keys.index_due,
            )
            ride = take_ride()
        charge = ride.charge if ride is not None else None
        args = AppendArgs(
            now_ms=now,
            ttl_seconds=ttl_seconds,
            gen=secrets.token_hex(8) if may_create else "",
            idempotency_digest=(
                hashlib.sha256(idempotency_key.encode()).hexdigest()[:32] if idempotency_key else ""
            ),
            context=context if context is not None else "",
            has_context="1" if context is not None else "0",
            tokens_sum=sum(m.token_count for m in messages),
            session_id=session_id,
            utc_day=utc_day(now),
            claim_member=fold_claim.member if fold_claim is not None else "",
            claim_now=fold_claim.now if fold_claim is not None else 0,
            claim_lease_until=fold_claim.lease_until if fold_claim is not None else 0,
            claim_has_slot="1" if fold_claim is not None and fold_claim.has_slot else "0",
            window_size=window_size,
            window_tokens=window_tokens if window_tokens is not None else "",
            limits=len(charge.hits) if charge is not None else 0,
            due_member=self._keys.due_member(tenant_id, session_id),
            indexed="1" if indexed else "0",
            body_digest=request_digest(messages, context) if idempotency_key else "",
        )
        reply = self._append.run(self._redis, keys, tenant_wide, args, payloads, charge)
        if ride is not None:
            ride.record(reply.rate)  # raises RateLimited when refused: nothing was written
        result = reply.result
        if self._cluster and not (result.replayed or result.refused):
            # The tenant-wide keys live in other slots: a second round trip.
            index, usage = self._keys.sessions_index(tenant_id), self._keys.usage(tenant_id)
            pipe = self._redis.pipeline(transaction=False)
            pipe.zadd(index, {session_id: now}, xx=not may_create)
            if messages:
                pipe.hincrby(usage, "messages", len(messages))
                pipe.hincrby(usage, f"messages:{utc_day(now)}", len(messages))
                if indexed:
                    member = self._keys.due_member(tenant_id, session_id)
                    pipe.zadd(self._keys.index_due, {member: now / 1000}, nx=True)
            pipe.execute()
        return result

    def delete_session(self, tenant_id: str, session_id: str) -> None:
        keys = self._keys.session(tenant_id, session_id)
        vector_prefix = self._vector_prefix(tenant_id, session_id) if self._vector_prefix is not None else ""
        if vector_prefix:
            self._erase_session.run(self._redis, keys, vector_prefix=vector_prefix)
        pipe = self._redis.pipeline(transaction=False)
        for key in keys.all:  # one key per UNLINK: cluster pipelines refuse multi-key ones
            pipe.unlink(key)
        pipe.zrem(self._keys.sessions_index(tenant_id), session_id)
        member = self._keys.due_member(tenant_id, session_id)
        pipe.zrem(self._keys.due, member)
        pipe.zrem(self._keys.index_due, member)
        pipe.execute()

    def delete_message(self, tenant_id: str, session_id: str, message_id: int) -> bool:
        prefix = self._vector_prefix(tenant_id, session_id) if self._vector_prefix is not None else ""
        keys = self._keys.session(tenant_id, session_id)
        return self._delete_message.run(self._redis, keys, message_id, vector_prefix=prefix)

    # --- reads -------------------------------------------------------------------------

    def read(self, tenant_id: str, session_id: str, *, limit: int) -> MemoryView:
        """The newest ``limit`` messages and the summary in one pipeline, which also runs a
        riding rate charge (a refused read raises ``RateLimited``; its data is not used)."""
        keys = self._keys.session(tenant_id, session_id)
        ride = None if self._cluster else take_ride()
        pipe = self._redis.pipeline(transaction=False)
        if ride is not None:
            self._charge.queue(pipe, ride.charge)
        pipe.lrange(keys.window, -limit, -1)
        pipe.hmget(keys.meta, "sum", "tok", "next", "ix")
        pipe.llen(keys.window)
        results = pipe.execute(raise_on_error=False)
        if ride is not None:
            ride.record(self._charge.settle(results.pop(0), self._redis, ride.charge))
        for result in results:
            if isinstance(result, Exception):
                raise result
        window, (summary, tokens, last_id, indexed_to), length = results
        window.reverse()
        return MemoryView(
            messages_json=[api_message(raw) for raw in window],
            context=summary.decode() if summary else None,
            tokens=int(tokens or 0),
            window_length=int(length),
            unindexed=int(last_id or 0) - int(indexed_to or 0),
        )

    def get_message(self, tenant_id: str, session_id: str, message_id: int) -> bytes | None:
        """One message, from the window or the archive."""
        keys = self._keys.session(tenant_id, session_id)
        pipe = self._redis.pipeline(transaction=True)  # a fold moving it cannot hide it
        pipe.lrange(keys.window, 0, -1)
        pipe.zrangebyscore(keys.archive, message_id, message_id)
        window, archived = pipe.execute()
        prefix = id_prefix(message_id)
        for raw in window:
            if raw.startswith(prefix):
                return api_message(raw)
        return api_message(archived[0]) if archived else None

    def history(self, tenant_id: str, session_id: str, *, before: int | None, limit: int) -> HistoryPage:
        """The session's messages, window and archive, newest first, with ids below
        ``before`` (all when None); ``next_before`` when older ones remain."""
        keys = self._keys.session(tenant_id, session_id)
        upper = f"({before}" if before is not None else "+inf"
        pipe = self._redis.pipeline(transaction=True)
        pipe.lrange(keys.window, 0, -1)
        pipe.zrevrangebyscore(keys.archive, upper, "-inf", start=0, num=limit + 1)
        window, archived = pipe.execute()
        newest_first = [raw for raw in reversed(window) if before is None or message_id(raw) < before]
        newest_first += archived  # every archived id is below every window id
        page = newest_first[:limit]
        more = len(newest_first) > limit
        return HistoryPage(
            [api_message(raw) for raw in page], message_id(page[-1]) if more and page else None
        )

    def list_sessions(self, tenant_id: str, *, offset: int, count: int, ttl_seconds: int = 0) -> list[str]:
        """Session ids by last write, oldest first (``count`` < 0: all from ``offset``);
        sessions past their TTL are pruned from the index first, so an expired session is
        never listed."""
        index = self._keys.sessions_index(tenant_id)
        pipe = self._redis.pipeline(transaction=False)
        self._prune_expired(pipe, index, ttl_seconds)
        pipe.zrange(index, offset, offset + count - 1 if count > 0 else -1)
        return [m.decode() for m in pipe.execute()[-1]]

    def recent_sessions(
        self, tenant_id: str, *, offset: int, count: int, ttl_seconds: int = 0
    ) -> list[tuple[str, int]]:
        """``(session id, last write in ms)``, most recently written first (the console's
        listing; ``list_sessions`` is MotorHead's order)."""
        index = self._keys.sessions_index(tenant_id)
        pipe = self._redis.pipeline(transaction=False)
        self._prune_expired(pipe, index, ttl_seconds)
        pipe.zrevrange(index, offset, offset + count - 1, withscores=True)
        return [(m.decode(), int(score)) for m, score in pipe.execute()[-1]]

    def count_sessions(self, tenant_id: str, *, ttl_seconds: int = 0) -> int:
        index = self._keys.sessions_index(tenant_id)
        pipe = self._redis.pipeline(transaction=False)
        self._prune_expired(pipe, index, ttl_seconds)
        pipe.zcard(index)
        return int(pipe.execute()[-1])

    @staticmethod
    def _prune_expired(pipe: Any, index: str, ttl_seconds: int) -> None:
        # Every write refreshes the session's TTL and its index score (ms of the write),
        # so a score older than the TTL means the session's keys have expired.
        if ttl_seconds > 0:
            cutoff = int(time.time() * 1000) - ttl_seconds * 1000
            pipe.zremrangebyscore(index, "-inf", f"({cutoff}")

    # --- tenant-wide -------------------------------------------------------------------

    def erase_tenant_data(self, tenant_id: str, *, batch: int = 500) -> int:
        """UNLINK every data key of a tenant, SCANning in batches (never KEYS)."""
        removed = 0
        for pattern in self._keys.tenant_data_patterns(tenant_id):
            chunk: list[bytes] = []
            for key in self._redis.scan_iter(match=pattern, count=batch):
                chunk.append(key)
                if len(chunk) >= batch:
                    removed += self._unlink_each(chunk)
                    chunk = []
            if chunk:
                removed += self._unlink_each(chunk)
        for due in (self._keys.due, self._keys.index_due):
            stale = [m for m, _ in self._redis.zscan_iter(due, match=f"{tenant_id}:*")]
            if stale:
                self._redis.zrem(due, *stale)
        return removed

    def _unlink_each(self, keys: list[bytes]) -> int:
        # One UNLINK per key inside a pipeline: keys of different sessions live in
        # different cluster slots, so a multi-key UNLINK would be cross-slot.
        pipe = self._redis.pipeline(transaction=False)
        for key in keys:
            pipe.unlink(key)
        return sum(pipe.execute())

    def ping(self) -> bool:
        return bool(self._redis.ping())
