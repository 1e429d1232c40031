"""Typed wrappers of a fold's two session scripts (the ``.lua`` files beside this module)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.domain.keyspace import SessionRedisKeys
from app.domain.redis_access import Script
from app.domain.scheduling.claims import SETTLE_LIBRARY
from app.domain.scheduling.outcome import FinishedRun


@dataclass(frozen=True, slots=True)
class FoldCommit:
    """What a fold saw and what it produced."""

    gen: str
    expected_watermark: int
    tokens_spent: int
    summary: str | None  # None: keep the previous summary
    folded_tokens: int
    folded_ids: Sequence[int]
    archive: bool  # long-term memory: the folded messages move to the archive


@dataclass(frozen=True, slots=True)
class FoldEnd:
    """finish_fold.lua's arguments: the fold's lock, its commit if it has one, the window
    bounds of the re-check, and (single node) the due mark to settle."""

    lock_token: str
    commit: FoldCommit | None
    window_size: int
    window_tokens: int | None
    due_member: str
    now: float


class BeginFoldScript:
    def __init__(self) -> None:
        self._script = Script(__package__, "begin_fold.lua")

    def run(self, client: Any, session: SessionRedisKeys, *, lock_token: str, lock_ms: int) -> Any:
        """The raw reply: 0 when the lock is taken, else [gen, summary, watermark, *window]
        (gen None: the session does not exist)."""
        return self._script.run(client, [session.lock, session.meta, session.window], [lock_token, lock_ms])


class FinishFoldScript:
    def __init__(self) -> None:
        self._script = Script(__package__, "finish_fold.lua", libraries=[SETTLE_LIBRARY])

    def run(self, client: Any, session: SessionRedisKeys, end: FoldEnd, *, due: str | None) -> FinishedRun:
        """``due``: the due set's key when it can join the script (a single node)."""
        commit = end.commit
        args: list[Any] = [
            end.lock_token,
            end.window_size,
            "" if end.window_tokens is None else end.window_tokens,
            end.due_member,
            end.now,
        ]
        if commit is None:
            args.append("0")
        else:
            args += [
                "1",
                commit.gen,
                commit.expected_watermark,
                commit.tokens_spent,
                "1" if commit.summary is None else "0",
                commit.summary or "",
                commit.folded_tokens,
                "1" if commit.archive else "0",
                *commit.folded_ids,
            ]
        keys = [session.window, session.meta, session.lock, session.archive]
        if due is not None:
            keys.append(due)
        return FinishedRun.from_reply(self._script.run(client, keys, args))
