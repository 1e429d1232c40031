"""Writes data the way MotorHead v3.0.2 does, command for command (motorhead-notes.md §3,
``src/memory.rs``, ``src/reducer.rs``, ``src/long_term_memory.rs``), for the tests of the
MotorHead import: fakeredis in the unit tests, a second real redis-server in the API tests."""

from __future__ import annotations

import secrets
import string
import struct
from collections.abc import Sequence

import redis

_NANOID_ALPHABET = string.ascii_letters + string.digits + "_-"


def nanoid() -> str:
    return "".join(secrets.choice(_NANOID_ALPHABET) for _ in range(21))


class MotorheadWriter:
    def __init__(self, client: redis.Redis, *, long_term_memory: bool = False, window_size: int = 12) -> None:
        self.redis = client
        self.long_term_memory = long_term_memory
        self.window_size = window_size

    def post(
        self,
        session_id: str,
        messages: Sequence[tuple[str, str]],
        *,
        context: str | None = None,
        namespace: str | None = None,
        at: int = 1_700_000_000,
    ) -> None:
        """``POST /sessions/{id}/memory``: SET context, ZADD the sessions set (unix seconds),
        LPUSH ``"role: content"`` (so the list runs newest first), then, with long-term memory,
        one ``motorhead:{nanoid}`` hash per message."""
        if context is not None:
            self.redis.set(f"context:{session_id}", context)
        index = f"sessions:{namespace}" if namespace is not None else "sessions"
        self.redis.zadd(index, {session_id: at})
        if messages:
            self.redis.lpush(f"session:{session_id}", *(f"{role}: {content}" for role, content in messages))
        if self.long_term_memory:
            for role, content in messages:
                self.redis.hset(
                    f"motorhead:{nanoid()}",
                    mapping={
                        "session": session_id,
                        "vector": struct.pack("<4f", 0.1, 0.2, 0.3, 0.4),
                        "content": content,
                        "role": role,
                    },
                )

    def compact(self, session_id: str, summary: str, tokens: int) -> None:
        """The reducer's commit: ``LTRIM session 0 half``, SET context, INCRBY tokens."""
        half = self.window_size // 2
        pipe = self.redis.pipeline(transaction=False)
        pipe.ltrim(f"session:{session_id}", 0, half)
        pipe.set(f"context:{session_id}", summary)
        pipe.incrby(f"tokens:{session_id}", tokens)
        pipe.execute()

    def delete(self, session_id: str, *, namespace: str | None = None) -> None:
        """``DELETE /sessions/{id}/memory``: the long-term hashes survive it."""
        index = f"sessions:{namespace}" if namespace is not None else "sessions"
        self.redis.zrem(index, session_id)
        self.redis.delete(f"context:{session_id}", f"session:{session_id}", f"tokens:{session_id}")
