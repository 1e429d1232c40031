"""One fold: lock → plan → summarize → commit, for one session.

The commit (``SessionStore.commit_fold``) re-checks the lock token, the session generation
and the watermark atomically: a lock that expired mid-call, a DELETE, or a concurrent
single-message delete makes it refuse instead of losing or duplicating a message.
"""

from __future__ import annotations

import logging
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app.domain.folding.store import FoldingStore
from app.domain.folding.summarizer import Line, Summarizer, SummarizerError
from app.domain.memory.scripts import FoldCommit
from app.domain.memory.store import SessionStore
from app.domain.memory.window import plan_fold
from app.domain.tenancy.authentication import Principal
from app.domain.tenancy.usage import UsageLedger

# The logger name operators already filter fold lines by.
log = logging.getLogger("recollect.jobs")


class FoldOutcome:
    DONE = "done"  # committed
    NOTHING = "nothing"  # window within policy
    GONE = "gone"  # session or tenant deleted
    BUSY = "busy"  # another process holds the lock
    CONFLICT = "conflict"  # the window changed underneath; try again
    FAILED = "failed"  # the summarizer failed; back off
    DEFERRED = "deferred"  # the tenant's daily LLM budget is spent


class FoldObserver:
    """Hooks folding reports through (metrics); the default does nothing."""

    def outcome(self, name: str) -> None:
        pass

    def running(self, delta: int) -> None:
        pass

    def llm(self, tenant_id: str, seconds: float, prompt_tokens: int, completion_tokens: int) -> None:
        pass


@dataclass(frozen=True, slots=True)
class FoldTiming:
    lock_seconds: float = 120.0
    retry_base: float = 2.0
    retry_max: float = 300.0
    budget_recheck: float = 60.0


def backoff(failures: int, retry_after: float | None, timing: FoldTiming, rng: random.Random) -> float:
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


class Fold:
    """Folds a session's overflow into its summary; ``run`` returns (outcome, retry delay)."""

    def __init__(
        self,
        sessions: SessionStore,
        schedule: FoldingStore,
        principal_for: Callable[[str], Principal | None],
        usage: UsageLedger,
        summarizer: Summarizer,
        timing: FoldTiming,
        *,
        rng: random.Random | None = None,
        observer: FoldObserver | None = None,
    ) -> None:
        self._sessions = sessions
        self._schedule = schedule
        self._principal_for = principal_for
        self._usage = usage
        self.summarizer = summarizer
        self.timing = timing
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._observer = observer or FoldObserver()

    def run(self, tenant_id: str, session_id: str) -> tuple[str, float | None]:
        principal = self._principal_for(tenant_id)
        if principal is None:
            return FoldOutcome.GONE, None
        token = secrets.token_hex(16)
        if not self._schedule.lock(tenant_id, session_id, token, seconds=self.timing.lock_seconds):
            return FoldOutcome.BUSY, None
        try:
            return self._locked(principal, session_id, token)
        finally:
            self._schedule.unlock(tenant_id, session_id, token)

    def _locked(self, principal: Principal, session_id: str, token: str) -> tuple[str, float | None]:
        tenant_id, policy = principal.tenant_id, principal.policy
        state = self._sessions.fold_state(tenant_id, session_id)
        if state.gen is None:
            return FoldOutcome.GONE, None
        plan = plan_fold(state.messages, window_size=policy.window_size, window_tokens=policy.window_tokens)
        if plan is None:
            return FoldOutcome.NOTHING, None
        deferred = budget_delay(
            self._usage.tokens_spent_today(tenant_id),
            policy.summary_token_budget_daily,
            self.timing.budget_recheck,
        )
        if deferred is not None:
            # Nothing is dropped: the messages wait in the window (GET shows them as
            # pending) until the budget renews or is raised.
            return FoldOutcome.DEFERRED, deferred
        lines = [Line(str(m["role"]), str(m["content"])) for m in plan.messages]
        started = time.perf_counter()
        try:
            result = self.summarizer.summarize(
                state.summary, lines, model=policy.summary_model, prompt=policy.summary_prompt
            )
        except SummarizerError as exc:
            failures = self._schedule.note_failure(tenant_id, session_id, gen=state.gen, code=exc.code)
            if failures is None:
                return FoldOutcome.GONE, None
            delay = backoff(failures, exc.retry_after, self.timing, self._rng)
            log.warning(
                "summarization failed tenant=%s code=%s failures=%s retry_in=%.1fs",
                tenant_id,
                exc.code,
                failures,
                delay,
            )
            return FoldOutcome.FAILED, delay
        if result.calls:
            self._observer.llm(
                tenant_id, time.perf_counter() - started, result.prompt_tokens, result.completion_tokens
            )
            self._usage.record_llm(
                tenant_id,
                calls=result.calls,
                prompt_tokens=result.prompt_tokens,
                completion_tokens=result.completion_tokens,
            )
        status = self._sessions.commit_fold(
            tenant_id,
            session_id,
            FoldCommit(
                lock_token=token,
                gen=state.gen,
                expected_watermark=state.watermark,
                tokens_spent=result.total_tokens,
                summary=result.summary,
                folded_tokens=plan.tokens,
                folded_ids=plan.ids,
                archive=policy.long_term_memory,
            ),
        )
        log.info(
            "fold tenant=%s status=%s folded=%d llm_calls=%d tokens=%d ms=%.0f",
            tenant_id,
            status,
            len(plan.ids),
            result.calls,
            result.total_tokens,
            (time.perf_counter() - started) * 1000,
        )
        if status == "ok":
            return FoldOutcome.DONE, None
        if result.total_tokens:
            self._sessions.add_tokens(tenant_id, session_id, gen=state.gen, tokens=result.total_tokens)
        if status == "gone":
            return FoldOutcome.GONE, None
        return FoldOutcome.CONFLICT, None
