"""Every Redis command of search: an index pass (``begin_index.lua`` takes the lock and reads
what is not indexed yet, ``finish_index.lua`` commits, releases and settles), and reading
postings, vectors and messages back for a query.

A session's search data lives beside its messages, in its hash tag (so it works on Redis
Cluster and is erased with the session): ``:x`` term → postings, ``:d`` message id →
``"<length> <term>..."`` (what deleting a message must undo), ``:v`` message id → vector,
``:k`` the index lock, and in the meta hash ``ix`` (indexed up to this id), ``xn``
(documents) and ``xl`` (their total length).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from redis import Redis

from app.domain.keyspace import Keyspace, encode_session_id
from app.domain.memory.stored_format import api_message, message_id
from app.domain.redis_access import Script, is_cluster, translates_outages
from app.domain.scheduling.claims import SETTLE_LIBRARY
from app.domain.scheduling.outcome import FinishedRun
from app.domain.search.keyword import SessionPostings
from app.domain.search.redisearch import VectorIndex


@dataclass(frozen=True, slots=True)
class Unindexed:
    gen: str | None  # None: the session does not exist
    indexed_to: int
    last_id: int
    elements: list[bytes]  # stored elements, oldest first


@dataclass(frozen=True, slots=True)
class IndexedDocument:
    message_id: int
    record: str  # "<length> <term> <term>..."
    vector: bytes  # b"" for none


@dataclass(frozen=True, slots=True)
class IndexCommit:
    gen: str
    expected_watermark: int
    watermark: int
    documents: Sequence[IndexedDocument]
    postings: dict[str, bytes]  # term → the postings to append


@translates_outages
class SearchStore:
    def __init__(self, redis: Redis, keyspace: Keyspace, *, vector_index: VectorIndex | None = None) -> None:
        """With ``vector_index`` (RediSearch), vectors are hashes of their own in its index;
        else they are kept in each session's vectors hash for an exact search."""
        self._redis = redis
        self._keys = keyspace
        self._vector_index = vector_index
        # On Redis Cluster the due set lives in another slot than the session.
        self._cluster = is_cluster(redis)
        self._begin = Script(__package__, "begin_index.lua")
        self._finish = Script(__package__, "finish_index.lua", libraries=[SETTLE_LIBRARY])
        self._release = Script("app.domain.scheduling", "release_lock.lua")
        self._note_failure = Script("app.domain.scheduling", "note_failure.lua")

    @property
    def vector_index(self) -> VectorIndex | None:
        """The RediSearch index when the server has the module (asked once per process)."""
        index = self._vector_index
        return index if index is not None and index.available() else None

    # --- indexing ----------------------------------------------------------------------

    def unlock(self, tenant_id: str, session_id: str, token: str) -> None:
        self._release.run(self._redis, [self._keys.session(tenant_id, session_id).index_lock], [token])

    def begin_pass(
        self, tenant_id: str, session_id: str, *, lock_token: str, lock_seconds: float, most: int
    ) -> Unindexed | None:
        """Take the session's index lock and read at most ``most`` messages not indexed yet,
        oldest first, in one round trip. None while another process holds the lock; no
        lock is kept when the session does not exist (``gen`` None)."""
        keys = self._keys.session(tenant_id, session_id)
        reply = self._begin.run(
            self._redis,
            [keys.index_lock, keys.window, keys.meta, keys.archive],
            [lock_token, int(lock_seconds * 1000), most],
        )
        if reply == 0:
            return None
        gen, indexed_to, last_id, *elements = reply
        return Unindexed(gen.decode() if gen else None, int(indexed_to), int(last_id), elements)

    def note_failure(self, tenant_id: str, session_id: str, *, gen: str, code: str) -> int | None:
        """Failed index passes since the last one that committed; ``None`` when the session
        is gone."""
        meta = self._keys.session(tenant_id, session_id).meta
        failures = int(self._note_failure.run(self._redis, [meta], [gen, code, "ixfails", "ixerr"]))
        return None if failures == -1 else failures

    def pending(self, tenant_id: str, session_id: str) -> int:
        """Ids given but not indexed yet (deleted ones included until the next pass)."""
        last_id, indexed_to = self._redis.hmget(self._keys.session(tenant_id, session_id).meta, "next", "ix")
        return int(last_id or 0) - int(indexed_to or 0)

    def finish_pass(
        self, tenant_id: str, session_id: str, commit: IndexCommit | None, *, lock_token: str
    ) -> FinishedRun:
        """End an index pass in one round trip: commit it only if nothing moved underneath,
        release the lock, and say whether messages given since are still unindexed. On a
        single node the session's index due mark is settled in the same step: dropped, or
        due now when more is pending."""
        keys = self._keys.session(tenant_id, session_id)
        args: list[str | int | float | bytes] = [
            lock_token,
            self._keys.due_member(tenant_id, session_id),
            time.time(),
        ]
        if commit is None:
            args.append("0")
        else:
            args += [
                "1",
                commit.gen,
                commit.expected_watermark,
                commit.watermark,
                len(commit.documents),
                len(commit.postings),
                index.session_prefix(tenant_id, session_id)
                if (index := self.vector_index) is not None
                else "",
                tenant_id,
                encode_session_id(session_id),
            ]
            for document in commit.documents:
                args += [document.message_id, document.record, document.vector]
            for term, added in commit.postings.items():
                args += [term, added]
        redis_keys = [
            keys.window,
            keys.meta,
            keys.archive,
            keys.postings,
            keys.documents,
            keys.vectors,
            keys.index_lock,
        ]
        if not self._cluster:
            redis_keys.append(self._keys.index_due)
        reply = self._finish.run(self._redis, redis_keys, args)
        return FinishedRun.from_reply(reply)

    # --- queries -----------------------------------------------------------------------

    def postings(
        self, tenant_id: str, session_ids: Sequence[str], terms: Sequence[str]
    ) -> list[SessionPostings]:
        """Per session, in order: its index statistics and each term's postings."""
        pipe = self._redis.pipeline(transaction=False)
        for session_id in session_ids:
            keys = self._keys.session(tenant_id, session_id)
            pipe.hmget(keys.meta, "xn", "xl")
            pipe.hmget(keys.postings, list(terms))
        replies = pipe.execute()
        found = []
        for i in range(0, len(replies), 2):
            documents, total_length = replies[i]
            found.append(
                SessionPostings(
                    int(documents or 0), int(total_length or 0), [p or b"" for p in replies[i + 1]]
                )
            )
        return found

    def vector_counts(self, tenant_id: str, session_ids: Sequence[str]) -> list[int]:
        pipe = self._redis.pipeline(transaction=False)
        for session_id in session_ids:
            pipe.hlen(self._keys.session(tenant_id, session_id).vectors)
        return [int(n) for n in pipe.execute()]

    def vectors(self, tenant_id: str, session_ids: Sequence[str]) -> list[dict[int, bytes]]:
        """Per session, in order: message id → stored vector."""
        pipe = self._redis.pipeline(transaction=False)
        for session_id in session_ids:
            pipe.hgetall(self._keys.session(tenant_id, session_id).vectors)
        return [{int(k): v for k, v in reply.items()} for reply in pipe.execute()]

    def messages(self, tenant_id: str, wanted: Sequence[tuple[str, int]]) -> dict[tuple[str, int], bytes]:
        """The API JSON of each (session id, message id) that still exists. The window is read
        before the archive, so a message a fold moves meanwhile is found in one of them."""
        sessions = list(dict.fromkeys(session_id for session_id, _ in wanted))
        pipe = self._redis.pipeline(transaction=False)
        for session_id in sessions:
            pipe.lrange(self._keys.session(tenant_id, session_id).window, 0, -1)
        for session_id, wanted_id in wanted:
            archive = self._keys.session(tenant_id, session_id).archive
            pipe.zrangebyscore(archive, wanted_id, wanted_id)
        replies = pipe.execute()
        windows = {
            session_id: {message_id(raw): raw for raw in replies[i]} for i, session_id in enumerate(sessions)
        }
        found: dict[tuple[str, int], bytes] = {}
        for (session_id, wanted_id), archived in zip(wanted, replies[len(sessions) :], strict=True):
            raw = windows[session_id].get(wanted_id) or (archived[0] if archived else None)
            if raw is not None:
                found[(session_id, wanted_id)] = api_message(raw)
        return found
