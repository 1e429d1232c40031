"""Typed wrappers of the transfer scripts (the ``.lua`` files beside this module)."""

from __future__ import annotations

from typing import Any, NamedTuple

from app.domain.keyspace import SessionRedisKeys, StagingRedisKeys
from app.domain.memory.scripts import TenantWideKeys
from app.domain.redis_access import Script


class ExportPageScript:
    def __init__(self) -> None:
        self._script = Script(__package__, "export_page.lua")

    def run(self, client: Any, session: SessionRedisKeys, *, after: int, upto: int, most: int) -> list[bytes]:
        """Stored elements with ids in ``(after, upto]``, oldest first, at most ``most``."""
        return list(self._script.run(client, [session.window, session.archive], [after, upto, most]))


class ImportCommit(NamedTuple):
    """commit_import.lua's arguments, in its order (a tuple: sent as it is)."""

    gen: str
    created_ms: int
    updated_ms: int
    has_summary: str  # '1' / '0'
    summary: str
    tokens: int
    last_id: int
    watermark: int
    folded: int
    window_tokens: int
    ttl_seconds: int
    session_id: str
    index_score: int  # the session's place in the tenant's session index (ms)
    due_member: str
    messages: int  # stored, for the usage count
    utc_day: str
    now_seconds: float
    indexed: str  # '1': long-term memory on and ids given: the session is marked for indexing
    fold_due: str  # '1': the window is over the policy, the session is marked for a fold


class CommitImportScript:
    def __init__(self) -> None:
        self._script = Script(__package__, "commit_import.lua")

    def run(
        self,
        client: Any,
        session: SessionRedisKeys,
        staging: StagingRedisKeys,
        tenant_wide: TenantWideKeys | None,
        commit: ImportCommit,
    ) -> bool:
        """True when committed; False when the session exists (the staged keys are gone)."""
        keys = [*session.written, staging.window, staging.archive]
        if tenant_wide is not None:
            keys += [tenant_wide.sessions_index, tenant_wide.usage, tenant_wide.due, tenant_wide.index_due]
        return self._script.run(client, keys, list(commit)) == 1
