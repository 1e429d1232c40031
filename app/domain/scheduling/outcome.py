"""What every background job shares: how a run ended (``Outcome``), its timings, the
backoff after a failure and the wait when a tenant's daily LLM budget is spent."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NamedTuple


class Outcome:
    """How one run of a job ended; the runner decides from it when the session is due again."""

    DONE = "done"  # committed
    NOTHING = "nothing"  # window within policy
    GONE = "gone"  # session or tenant deleted
    BUSY = "busy"  # another process holds the lock
    CONFLICT = "conflict"  # the window changed underneath; try again
    FAILED = "failed"  # the LLM or embedding call failed; back off
    DEFERRED = "deferred"  # the tenant's daily LLM budget is spent


class RunResult(NamedTuple):
    """How one run of a job ended and what the runner does next."""

    outcome: str  # an ``Outcome``
    retry_after: float | None = None  # seconds until it may run again, when it must
    # Set when the run's own last script settled the session's due mark in the same step
    # as its commit (a single Redis node): whether more is due already. None: the runner
    # settles it (drops the mark, then re-checks).
    more_due: bool | None = None


@dataclass(frozen=True, slots=True)
class FinishedRun:
    """What a job's finishing script answers (``finish_fold.lua``, ``finish_index.lua``)."""

    status: str  # "ok", "released" (nothing to commit), or why the commit was refused
    more_due: bool  # there is more to do already
    settled: bool  # the due mark was settled in the same step (a single node)

    def result(self) -> RunResult:
        outcome = {"ok": Outcome.DONE, "released": Outcome.NOTHING, "gone": Outcome.GONE}.get(
            self.status,
            Outcome.CONFLICT,  # the lock lapsed, or the session moved underneath
        )
        if outcome == Outcome.CONFLICT:
            return RunResult(outcome)
        return RunResult(outcome, more_due=self.more_due if self.settled else None)

    @classmethod
    def from_reply(cls, reply: list) -> FinishedRun:
        """From the script's ``{status, more due, settled}``."""
        status, more_due, settled = reply
        text = "ok" if status == 1 else "released" if status == 0 else status.decode()
        return cls(text, bool(more_due), bool(settled))


class JobObserver:
    """Hooks a job reports through (metrics); the default does nothing."""

    def outcome(self, name: str) -> None:
        pass

    def running(self, delta: int) -> None:
        pass

    def llm(self, tenant_id: str, seconds: float, prompt_tokens: int, completion_tokens: int) -> None:
        pass


@dataclass(frozen=True, slots=True)
class JobTiming:
    lock_seconds: float = 120.0
    retry_base: float = 2.0
    retry_max: float = 300.0
    budget_recheck: float = 60.0


def backoff(failures: int, retry_after: float | None, timing: JobTiming, rng: random.Random) -> float:
    """Exponential backoff with equal jitter, never shorter than the server asked."""
    # The exponent is capped: past a thousand failures 2.0 ** n overflows a float.
    ceiling = min(timing.retry_max, timing.retry_base * 2 ** min(max(0, failures - 1), 64))
    delay = ceiling / 2 + rng.uniform(0, ceiling / 2)
    return max(delay, retry_after or 0.0)


def budget_delay(spent_today: int, budget: int, recheck: float, now: datetime | None = None) -> float | None:
    """Seconds to wait when today's LLM budget is spent, else ``None``: re-checked every
    ``recheck`` seconds (an operator may raise it) and at the latest just after UTC
    midnight, when it renews."""
    if budget <= 0 or spent_today < budget:
        return None
    now = now or datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return min(recheck, (midnight - now).total_seconds() + 1)
