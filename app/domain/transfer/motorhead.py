"""Reading a MotorHead deployment's Redis (its layout: motorhead-notes.md §3), read-only.

* ``session:{id}`` — a list of ``"{role}: {content}"``, the newest first (LPUSH); split at
  the first ``": "`` as MotorHead's own GET does (an entry without one, which its GET never
  returns, is counted as unreadable).
* ``context:{id}`` — the summary (the literal ``NONE`` means none); ``tokens:{id}`` — the
  summarization tokens spent.
* ``sessions`` / ``sessions:{namespace}`` — sorted sets, score = unix seconds of the last
  POST. Only this index is namespaced: the data keys are global.
* ``motorhead:{nanoid}`` — long-term memory, one hash per message indexed (``session``,
  ``role``, ``content``, ``vector``), with no order, no time, and never deleted: they hold the
  window's messages too, which are told apart by role and content.
"""

from __future__ import annotations

import functools
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.exceptions
from redis import Redis

from app.domain.errors import RecollectError

F = TypeVar("F", bound=Callable[..., Any])
SCAN_COUNT = 1000
BATCH = 500


class SourceUnavailable(RecollectError):
    """The MotorHead Redis cannot be read (its URL's credentials are never repeated)."""

    code = "source_unavailable"


def _reading(method: F) -> F:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except redis.exceptions.RedisError as exc:
            raise SourceUnavailable(f"the MotorHead Redis cannot be read ({type(exc).__name__})") from exc

    return wrapper  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class SourceSession:
    session_id: str  # undecodable bytes kept as surrogate escapes (refused as an id later)
    last_write_ms: int | None  # from the sessions sorted sets; None when unlisted


@dataclass(frozen=True, slots=True)
class MotorheadSession:
    session_id: str
    summary: str | None
    tokens: int
    window: list[tuple[str, str]]  # (role, content), oldest first
    archive: list[tuple[str, str]]  # long-term memory beyond the window, in key order
    unreadable: int  # list entries MotorHead's GET would not return

    @property
    def empty(self) -> bool:
        return not (self.window or self.archive or self.summary or self.tokens)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="surrogateescape")


def _raw(text: str) -> bytes:
    return text.encode("utf-8", errors="surrogateescape")


class MotorheadSource:
    def __init__(self, client: Redis, *, namespace: str | None = None) -> None:
        self._redis = client
        self.namespace = namespace

    @_reading
    def sessions(self) -> list[SourceSession]:
        """The sessions to copy, least recently written first. With a namespace: those
        listed in ``sessions:{namespace}``. Without: those in ``sessions`` and in every
        namespace's set (the latest time wins), and every ``session:`` list listed nowhere."""
        if self.namespace is not None:
            indexes: list[bytes] = [f"sessions:{self.namespace}".encode()]
        else:
            indexes = [b"sessions", *self._scan(b"sessions:*", "zset")]
        last_write: dict[bytes, float | None] = {}
        for index in indexes:
            for member, score in self._redis.zscan_iter(index, count=SCAN_COUNT):
                known = last_write.get(member)
                last_write[member] = score if known is None else max(known, score)
        if self.namespace is None:
            for key in self._scan(b"session:*", "list"):
                last_write.setdefault(key[len(b"session:") :], None)
        found = [
            SourceSession(_text(member), int(score * 1000) if score is not None else None)
            for member, score in last_write.items()
        ]
        found.sort(key=lambda s: (s.last_write_ms is None, s.last_write_ms or 0, s.session_id))
        return found

    @_reading
    def long_term_keys(self) -> dict[str, list[bytes]]:
        """Every ``motorhead:*`` hash key, by the session it belongs to (one SCAN)."""
        found: dict[str, list[bytes]] = defaultdict(list)
        chunk: list[bytes] = []

        def settle() -> None:
            pipe = self._redis.pipeline(transaction=False)
            for key in chunk:
                pipe.hget(key, "session")
            for key, session in zip(chunk, pipe.execute(raise_on_error=False), strict=True):
                if isinstance(session, bytes):
                    found[_text(session)].append(key)
            chunk.clear()

        for key in self._scan(b"motorhead:*", "hash"):
            chunk.append(key)
            if len(chunk) >= BATCH:
                settle()
        if chunk:
            settle()
        return dict(found)

    @_reading
    def read(self, session_id: str, long_term: Sequence[bytes] = ()) -> MotorheadSession:
        raw_id = _raw(session_id)
        pipe = self._redis.pipeline(transaction=False)
        pipe.lrange(b"session:" + raw_id, 0, -1)
        pipe.get(b"context:" + raw_id)
        pipe.get(b"tokens:" + raw_id)
        entries, context, tokens = pipe.execute()
        window: list[tuple[str, str]] = []
        unreadable = 0
        for entry in reversed(entries):  # newest first there
            role, sep, content = entry.partition(b": ")
            if not sep or not role:
                unreadable += 1
                continue
            window.append((role.decode("utf-8", errors="replace"), content.decode("utf-8", errors="replace")))
        in_window = Counter(window)
        archive = []
        for role, content in self._long_term(sorted(long_term)):
            if in_window[(role, content)] > 0:
                in_window[(role, content)] -= 1  # the same message, indexed when posted
            else:
                archive.append((role, content))
        summary = context.decode("utf-8", errors="replace") if context is not None else None
        return MotorheadSession(
            session_id,
            None if summary is None or summary.strip() == "NONE" else summary,
            int(tokens) if tokens is not None and tokens.strip().isdigit() else 0,
            window,
            archive,
            unreadable,
        )

    def _long_term(self, keys: Sequence[bytes]) -> Iterator[tuple[str, str]]:
        for start in range(0, len(keys), BATCH):
            pipe = self._redis.pipeline(transaction=False)
            for key in keys[start : start + BATCH]:
                pipe.hmget(key, "role", "content")
            for role, content in pipe.execute():
                if role is not None and content is not None:
                    yield role.decode("utf-8", errors="replace"), content.decode("utf-8", errors="replace")

    def _scan(self, pattern: bytes, kind: str) -> Iterator[bytes]:
        return self._redis.scan_iter(match=pattern, count=SCAN_COUNT, _type=kind)
