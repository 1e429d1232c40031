"""Every Redis command of export and import: a session's header and its messages read in
pages, the tenant's sessions walked with a cursor, an import staged under keys of its own
and committed by one script.

Like the search store, this reads and writes a session's keys (``keyspace``) with scripts
of its own; each touches one session's slot, so all of it works on Redis Cluster. The
staged keys share the session's hash tag and expire after ``STAGING_SECONDS`` if an
import dies before it commits or discards them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from redis import Redis

from app.domain.keyspace import Keyspace, StagingRedisKeys
from app.domain.memory.scripts import TenantWideKeys
from app.domain.memory.stored_format import message_id
from app.domain.redis_access import is_cluster, translates_outages
from app.domain.transfer.format import SessionHeader
from app.domain.transfer.scripts import CommitImportScript, ExportPageScript, ImportCommit

STAGING_SECONDS = 3600


@dataclass(frozen=True, slots=True)
class SessionCursor:
    """One step through a tenant's session index: the ids, and where to go on (0: done)."""

    session_ids: list[str]
    cursor: int


@translates_outages
class TransferStore:
    def __init__(self, redis: Redis, keyspace: Keyspace) -> None:
        self._redis = redis
        self._keys = keyspace
        self._cluster = is_cluster(redis)
        self._page = ExportPageScript()
        self._commit = CommitImportScript()

    # --- export ------------------------------------------------------------------------

    def header(self, tenant_id: str, session_id: str) -> SessionHeader | None:
        """The session's own fields; ``None`` when it does not exist."""
        meta = self._keys.session(tenant_id, session_id).meta
        gen, summary, tokens, last_id, watermark, created, updated = self._redis.hmget(
            meta, "gen", "sum", "tok", "next", "wm", "crt", "upd"
        )
        if gen is None:
            return None
        return SessionHeader(
            session_id,
            summary.decode() if summary is not None else None,
            int(tokens or 0),
            int(created) if created else None,
            int(updated) if updated else None,
            int(last_id or 0),
            int(watermark or 0),
        )

    def page(self, tenant_id: str, session_id: str, *, after: int, upto: int, most: int) -> list[bytes]:
        """Stored messages with ids in ``(after, upto]``, oldest first (archive, then window)."""
        keys = self._keys.session(tenant_id, session_id)
        return self._page.run(self._redis, keys, after=after, upto=upto, most=most)

    def sessions(self, tenant_id: str, *, cursor: int, count: int) -> SessionCursor:
        """One ZSCAN step through the tenant's session index. A session present for the
        whole walk is returned at least once, whatever is written meanwhile (a write moves
        a session's score, not its place in the scan)."""
        cursor, found = self._redis.zscan(self._keys.sessions_index(tenant_id), cursor, count=count)
        return SessionCursor([member.decode() for member, _ in found], int(cursor))

    # --- import ------------------------------------------------------------------------

    def exists(self, tenant_id: str, session_id: str) -> bool:
        return bool(self._redis.hexists(self._keys.session(tenant_id, session_id).meta, "gen"))

    def staging(self, tenant_id: str, session_id: str, nonce: str) -> StagingRedisKeys:
        return self._keys.staging(tenant_id, session_id, nonce)

    def stage(
        self, staging: StagingRedisKeys, *, window: Sequence[bytes], archive: Sequence[tuple[int, bytes]]
    ) -> None:
        """Add elements to the staged window (in order) and archive (scored by id)."""
        pipe = self._redis.pipeline(transaction=False)
        if window:
            pipe.rpush(staging.window, *window)
            pipe.expire(staging.window, STAGING_SECONDS)
        if archive:
            pipe.zadd(staging.archive, {element: mid for mid, element in archive})
            pipe.expire(staging.archive, STAGING_SECONDS)
        pipe.execute()

    def spill(self, staging: StagingRedisKeys, count: int, *, batch: int = 1000) -> None:
        """Move the staged window's oldest ``count`` elements to the staged archive."""
        while count > 0:
            take = min(count, batch)
            elements = self._redis.lrange(staging.window, 0, take - 1)
            pipe = self._redis.pipeline(transaction=False)
            pipe.zadd(staging.archive, {element: message_id(element) for element in elements})
            pipe.expire(staging.archive, STAGING_SECONDS)
            pipe.ltrim(staging.window, take, -1)
            pipe.execute()
            count -= take

    def discard(self, staging: StagingRedisKeys) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.unlink(staging.window)  # one key per UNLINK: a cluster pipeline refuses more
        pipe.unlink(staging.archive)
        pipe.execute()

    def commit(
        self, tenant_id: str, session_id: str, staging: StagingRedisKeys, commit: ImportCommit
    ) -> bool:
        """Make the staged session live; False (and the staging dropped) when the session
        exists. On a single node the session index, usage count and due marks are written
        by the same script; on Redis Cluster (other slots) in a second round trip."""
        session = self._keys.session(tenant_id, session_id)
        tenant_wide = None
        if not self._cluster:
            tenant_wide = TenantWideKeys(
                self._keys.sessions_index(tenant_id),
                self._keys.usage(tenant_id),
                self._keys.due,
                self._keys.index_due,
            )
        if not self._commit.run(self._redis, session, staging, tenant_wide, commit):
            return False
        if self._cluster:
            pipe = self._redis.pipeline(transaction=False)
            pipe.zadd(self._keys.sessions_index(tenant_id), {session_id: commit.index_score})
            if commit.messages:
                usage = self._keys.usage(tenant_id)
                pipe.hincrby(usage, "messages", commit.messages)
                pipe.hincrby(usage, f"messages:{commit.utc_day}", commit.messages)
            if commit.indexed == "1":
                pipe.zadd(self._keys.index_due, {commit.due_member: commit.now_seconds}, nx=True)
            if commit.fold_due == "1":
                pipe.zadd(self._keys.due, {commit.due_member: commit.now_seconds}, nx=True)
            pipe.execute()
        return True
