"""Typed wrappers of the session scripts (the ``.lua`` files beside this module)."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from app.domain.keyspace import SessionRedisKeys
from app.domain.ratelimit.charge import CHARGE_LIBRARY, RateCharge, RateWindow
from app.domain.redis_access import Script
from app.domain.scheduling.claims import CLAIM_LIBRARY

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
