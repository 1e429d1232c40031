"""Vectors in a RediSearch HNSW index, where the Redis server has the search module (Redis
Stack, Redis 8, managed Redis) on a single node.

One index per vector dimension, ``<prefix>:vectors:<dims>``, over hashes
``<prefix>:vec:{<tenant>:<session>}:<id>`` (the session's hash tag, so a session's vectors
stay in its slot) holding the tenant (TAG ``t``), the encoded session id (TAG ``s``) and the
vector (``v``, FLOAT32, cosine). The index is shared by every tenant: every query filters by
tenant, and by session where asked, and every tag value is escaped — session ids are the
client's and may hold any of RediSearch's query syntax.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence

import redis.exceptions
from redis import Redis

from app.domain.keyspace import Keyspace, decode_session_id, encode_session_id
from app.domain.redis_access import is_cluster, translates_outages

log = logging.getLogger("recollect")

_TAG_UNSAFE = re.compile(r"([^A-Za-z0-9_])")
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 200


def escape_tag(value: str) -> str:
    """A TAG value safe inside ``@field:{...}``: every character but letters, digits and
    ``_`` backslash-escaped (``-``, ``:``, ``.``, spaces, ``|``, braces, ``*``...)."""
    return _TAG_UNSAFE.sub(r"\\\1", value)


def has_search_module(client: Redis) -> bool:
    """True on a single node whose server has RediSearch loaded."""
    if is_cluster(client):
        return False  # open-source cluster builds have no cross-shard search
    try:
        modules = client.execute_command("MODULE", "LIST")
    except redis.exceptions.ResponseError:
        return False  # e.g. an embedded or restricted server
    for module in modules or ():
        fields = module if isinstance(module, dict) else dict(zip(module[::2], module[1::2], strict=False))
        name = fields.get(b"name", fields.get("name", b""))
        if (name.decode() if isinstance(name, bytes) else str(name)).lower() in (
            "search",
            "ft",
            "searchlight",
        ):
            return True
    return False


@translates_outages
class VectorIndex:
    def __init__(self, client: Redis, keyspace: Keyspace) -> None:
        self._redis = client
        self._keys = keyspace
        self.key_prefix = f"{keyspace.prefix}:vec:"
        self._created: set[int] = set()
        self._lock = threading.Lock()
        self._available: bool | None = None

    def available(self) -> bool:
        """Whether the server has the search module: asked once per process, when Redis
        first answers (an outage at start must not settle it)."""
        if self._available is None:
            self._available = has_search_module(self._redis)
            if self._available:
                log.info("the Redis server has the search module: vectors go in a RediSearch index")
        return self._available

    def prefix_if_available(self, tenant_id: str, session_id: str) -> str:
        """``session_prefix`` when the index is in use, else ``""``."""
        return self.session_prefix(tenant_id, session_id) if self.available() else ""

    def index_name(self, dims: int) -> str:
        return f"{self._keys.prefix}:vectors:{dims}"

    def session_prefix(self, tenant_id: str, session_id: str) -> str:
        """The key of message ``<id>``'s vector is this plus the id."""
        return f"{self.key_prefix}{{{tenant_id}:{encode_session_id(session_id)}}}:"

    def ensure(self, dims: int) -> None:
        """Create the index for ``dims`` once (idempotent across processes)."""
        if dims in self._created:
            return
        with self._lock:
            try:
                self._redis.execute_command(
                    "FT.CREATE", self.index_name(dims), "ON", "HASH", "PREFIX", 1, self.key_prefix,
                    "SCHEMA", "t", "TAG", "s", "TAG",
                    "v", "VECTOR", "HNSW", 10, "TYPE", "FLOAT32", "DIM", dims, "DISTANCE_METRIC", "COSINE",
                    "M", HNSW_M, "EF_CONSTRUCTION", HNSW_EF_CONSTRUCTION,
                )  # fmt: skip
                log.info("created the RediSearch vector index for %d dimensions", dims)
            except redis.exceptions.ResponseError as exc:
                if "already exists" not in str(exc).lower():
                    raise
            self._created.add(dims)

    def nearest(
        self, tenant_id: str, session_ids: Sequence[str] | None, vector: bytes, k: int
    ) -> list[tuple[str, int, float]]:
        """The ``k`` nearest (session id, message id, cosine distance) of the tenant's
        vectors (of those sessions when given), nearest first."""
        dims = len(vector) // 4
        self.ensure(dims)
        query = f"@t:{{{escape_tag(tenant_id)}}}"
        if session_ids is not None:
            if not session_ids:
                return []
            tags = " | ".join(escape_tag(encode_session_id(s)) for s in session_ids)
            query += f" @s:{{{tags}}}"
        reply = self._redis.execute_command(
            "FT.SEARCH", self.index_name(dims), f"({query})=>[KNN {k} @v $q AS dist]",
            "PARAMS", 2, "q", vector, "SORTBY", "dist", "RETURN", 2, "s", "dist",
            "LIMIT", 0, k, "DIALECT", 2,
        )  # fmt: skip
        found = []
        for key, fields in _documents(reply):
            message_id = int(key.rsplit(b":", 1)[1])
            session_id = decode_session_id(fields[b"s"].decode())
            found.append((session_id, message_id, max(0.0, float(fields[b"dist"]))))
        return found


def _documents(reply: object) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """(key, returned fields) of an ``FT.SEARCH`` reply, in RESP3 (a map) or RESP2 (a flat
    list: total, then key and field list per document)."""
    if isinstance(reply, dict):
        return [(doc[b"id"], doc[b"extra_attributes"]) for doc in reply[b"results"]]
    assert isinstance(reply, list)
    return [
        (reply[i], dict(zip(reply[i + 1][::2], reply[i + 1][1::2], strict=False)))
        for i in range(1, len(reply), 2)
    ]
