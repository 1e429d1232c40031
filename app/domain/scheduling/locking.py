"""One job at a time per session: a run begins by taking the session's lock for its kind of
job (a random token with an expiry) in the same script that reads what it works on, and its
finishing script releases it (``begin_fold.lua`` / ``finish_fold.lua``, ``begin_index.lua``
/ ``finish_index.lua``). ``run_locked`` releases it when a run ends any other way."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Protocol, TypeVar

from app.domain.scheduling.outcome import Outcome, RunResult


class Begun(Protocol):
    @property
    def gen(self) -> str | None:
        """The session's generation; None when it does not exist (no lock was kept)."""
        ...


B = TypeVar("B", bound=Begun)


def run_locked(
    begin: Callable[[str], B | None],
    work: Callable[[str, B], RunResult],
    release: Callable[[str], None],
) -> RunResult:
    """``begin(token)`` → what the run works on, or None when another process holds the lock
    (``BUSY``); then ``work(token, begun)``, which ends with the finishing script."""
    token = secrets.token_hex(16)
    begun = begin(token)
    if begun is None:
        return RunResult(Outcome.BUSY)
    if begun.gen is None:
        return RunResult(Outcome.GONE)
    try:
        return work(token, begun)
    except BaseException:
        # E.g. Redis went away mid-run: never leave the lock to its expiry if it can be
        # released (a no-op when the finishing script had released it already).
        release(token)
        raise
