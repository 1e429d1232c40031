"""Test doubles and helpers shared by the search tests."""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from redis import Redis

from app.domain.keyspace import Keyspace
from app.domain.search.embedder import EmbeddingError, Embeddings
from tests.unit.domain.fakes import RecordingObserver, Tenants  # noqa: F401 - re-exported

TENANT = "acme"
OTHER = "globex"
DIMS = 8


def hashed_vector(text: str, dims: int = DIMS) -> list[float]:
    """A deterministic unit vector from the text's lower-cased words (feature hashing)."""
    raw = [0.0] * dims
    for word in text.lower().split() or [text]:
        digest = hashlib.sha256(word.encode()).digest()
        raw[digest[0] % dims] += 1.0 if digest[1] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    return [v / norm for v in raw]


class FakeEmbedder:
    """Deterministic vectors: ``table[text]`` when set, else a hashed vector. Records each
    call's texts; raises ``error`` while it is set; runs ``during`` inside the next call."""

    model = "fake-embedding"

    def __init__(self, dims: int = DIMS) -> None:
        self.dims = dims
        self.table: dict[str, list[float]] = {}
        self.calls: list[list[str]] = []
        self.error: EmbeddingError | None = None
        self.during: Callable[[], None] | None = None
        self.tokens_per_text = 3
        self.closed = 0

    def vector(self, text: str) -> list[float]:
        return self.table.get(text) or hashed_vector(text, self.dims)

    def embed(self, texts: Sequence[str]) -> Embeddings:
        self.calls.append(list(texts))
        if self.during is not None:
            hook, self.during = self.during, None
            hook()
        if self.error is not None:
            raise self.error
        return Embeddings([self.vector(t) for t in texts], self.tokens_per_text * len(texts))

    def close(self) -> None:
        self.closed += 1

    @property
    def texts(self) -> list[str]:
        return [text for call in self.calls for text in call]


@dataclass(frozen=True)
class IndexState:
    """What a session's search index holds, decoded."""

    postings: dict[str, list[tuple[int, int, int]]]  # term → (message id, tf, length)...
    documents: dict[int, str]  # message id → "<length> <term>..."
    vectors: dict[int, list[float]]
    indexed_to: int
    documents_count: int  # meta xn
    total_length: int  # meta xl
    failures: int  # meta ixfails
    error: str | None  # meta ixerr

    @property
    def indexed_ids(self) -> list[int]:
        return sorted(self.documents)


def index_state(redis: Redis, keyspace: Keyspace, session_id: str, tenant_id: str = TENANT) -> IndexState:
    keys = keyspace.session(tenant_id, session_id)
    ix, xn, xl, fails, err = redis.hmget(keys.meta, "ix", "xn", "xl", "ixfails", "ixerr")
    return IndexState(
        postings={
            term.decode(): list(struct.iter_unpack("<III", raw))
            for term, raw in redis.hgetall(keys.postings).items()
        },
        documents={int(k): v.decode() for k, v in redis.hgetall(keys.documents).items()},
        vectors={
            int(k): np.frombuffer(v, dtype="<f4").tolist() for k, v in redis.hgetall(keys.vectors).items()
        },
        indexed_to=int(ix or 0),
        documents_count=int(xn or 0),
        total_length=int(xl or 0),
        failures=int(fails or 0),
        error=err.decode() if err else None,
    )


def snapshot(redis: Redis) -> dict[bytes, object]:
    """Every key's value (and whether it expires): equal snapshots mean nothing was written."""
    found: dict[bytes, object] = {}
    for key in sorted(redis.keys("*")):
        kind = redis.type(key)
        if kind == b"string":
            value: object = redis.get(key)
        elif kind == b"hash":
            value = redis.hgetall(key)
        elif kind == b"list":
            value = redis.lrange(key, 0, -1)
        elif kind == b"zset":
            value = redis.zrange(key, 0, -1, withscores=True)
        else:
            value = sorted(redis.smembers(key))
        found[key] = (kind, value, redis.ttl(key) > 0)
    return found
