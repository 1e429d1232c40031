"""One job at a time per session: a run holds the session's lock for that kind of job (a
random token with an expiry, released only by its holder: ``release_lock.lua``)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Protocol

from app.domain.scheduling.outcome import Outcome, RunResult


class SessionLocks(Protocol):
    """A job's per-session lock (``SearchStore``; a fold takes its own inside ``begin_fold``)."""

    def lock(self, tenant_id: str, session_id: str, token: str, *, seconds: float) -> bool: ...

    def unlock(self, tenant_id: str, session_id: str, token: str) -> None: ...


def run_locked(
    locks: SessionLocks,
    tenant_id: str,
    session_id: str,
    *,
    seconds: float,
    work: Callable[[str], RunResult],
) -> RunResult:
    """``work(token)`` while holding the lock; ``BUSY`` when another process holds it."""
    token = secrets.token_hex(16)
    if not locks.lock(tenant_id, session_id, token, seconds=seconds):
        return RunResult(Outcome.BUSY)
    try:
        return work(token)
    finally:
        locks.unlock(tenant_id, session_id, token)
