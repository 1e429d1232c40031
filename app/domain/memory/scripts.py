"""Typed wrappers of the session scripts (the ``.lua`` files beside this module)."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from app.domain.keyspace import SessionRedisKeys
from app.domain.ratelimit.charge import CHARGE_LIBRARY, RateCharge, RateWindow
from app.domain.redis_access import Script
from app.domain.scheduling.claims import CLAIM_LIBRARY, SETTLE_LIBRARY
from app.domain.scheduling.outcome import FinishedRun

MAX_MESSAGE_ID = 2**32 - 1


@dataclass(frozen=True, slots=True)
class TenantWideKeys:
    """Keys an append may also write on a single node (other slots on a cluster)."""

    sessions_index: str
    usage: str
    due: str
    index_due: str


class AppendArgs(NamedTuple):
    """append.lua's fixed arguments, in its order (a tuple: sent as it is)."""

    now_ms: int
    ttl_seconds: int
    gen: str  # '' = the session must exist already (the tenant is at its session quota)
    idempotency_digest: str  # '' = none
    context: str
    has_context: str  # '1' / '0'
    tokens_sum: int
    session_id: str
    utc_day: str
    claim_member: str  # '' = no fold claim in the script
    claim_now: float
    claim_lease_until: float
    claim_has_slot: str
    window_size: int
    window_tokens: int | str  # '' = no token bound
    limits: int  # how many rate limits the charge holds
    due_member: str
    indexed: str  # '1': long-term memory on, the new messages are marked for indexing
    body_digest: str  # of the messages and summary an Idempotency-Key came with ('' = none)


@dataclass(frozen=True, slots=True)
class AppendResult:
    first_id: int
    last_id: int
    window_length: int
    created: bool
    replayed: bool
    window_tokens: int
    refused: bool = False  # a new session, but the tenant is at its session quota
    fold_claimed: bool | None = None  # None: no fold claim was attempted in the script
    key_reused: bool = False  # the Idempotency-Key was first sent with another body

    @property
    def ids(self) -> list[int]:
        return list(range(self.first_id, self.last_id + 1))


@dataclass(frozen=True, slots=True)
class AppendReply:
    result: AppendResult
    rate: RateWindow  # what the charge found (admitted when there was none)


class AppendScript:
    def __init__(self) -> None:
        self._script = Script(__package__, "append.lua", libraries=[CHARGE_LIBRARY, CLAIM_LIBRARY])

    def run(
        self,
        client: Any,
        session: SessionRedisKeys,
        tenant_wide: TenantWideKeys | None,
        args: AppendArgs,
        payloads: Sequence[bytes],
        charge: RateCharge | None = None,
    ) -> AppendReply:
        keys = session.written
        if tenant_wide is not None:
            keys += [tenant_wide.sessions_index, tenant_wide.usage, tenant_wide.due, tenant_wide.index_due]
        if charge is not None:
            keys += charge.keys
        argv = [*args, *(charge.args if charge is not None else ()), *payloads]
        reply = self._script.run(client, keys, argv)
        first, last, length, created, replayed, tokens, refused, claimed, *rate = reply
        result = AppendResult(
            int(first),
            int(last),
            int(length),
            bool(created),
            bool(replayed),
            int(tokens),
            bool(refused),
            bool(claimed) if args.claim_member else None,
            key_reused=int(replayed) == 2,
        )
        return AppendReply(result, RateWindow.from_reply(rate))


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


class DeleteMessageScript:
    def __init__(self) -> None:
        self._script = Script(__package__, "delete_message.lua")

    def run(
        self, client: Any, session: SessionRedisKeys, message_id: int, *, vector_prefix: str = ""
    ) -> bool:
        """True when the message was in the window or the archive (and is gone now, from
        the search index too; ``vector_prefix``: its vector is a hash of its own)."""
        keys = [
            session.window,
            session.meta,
            session.archive,
            session.postings,
            session.documents,
            session.vectors,
        ]
        if not 0 < message_id <= MAX_MESSAGE_ID:
            return False  # never given: ids are 32-bit in the search postings
        args = [message_id, struct.pack("<I", message_id), vector_prefix]
        return self._script.run(client, keys, args) is not None


class EraseSessionScript:
    def __init__(self) -> None:
        self._script = Script(__package__, "erase_session.lua")

    def run(self, client: Any, session: SessionRedisKeys, *, vector_prefix: str) -> None:
        self._script.run(client, [session.documents, *session.all], [vector_prefix])
