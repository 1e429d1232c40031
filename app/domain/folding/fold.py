"""One fold, for one session: lock and read → plan → summarize → commit, unlock and
re-check — two Redis round trips besides the summarizer's own calls
(``FoldingStore.begin_fold`` and ``finish_fold``).

The commit re-checks the lock token, the session generation and the watermark atomically:
a lock that expired mid-call, a DELETE, or a concurrent single-message delete makes it
refuse instead of losing or duplicating a message.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

from app.domain.folding.scripts import FoldCommit
from app.domain.folding.store import FoldingStore, FoldState
from app.domain.folding.summarizer import Line, Summarizer, SummarizerError
from app.domain.memory.window import overflows, plan_fold
from app.domain.scheduling.locking import run_locked
from app.domain.scheduling.outcome import (
    FinishedRun,
    JobObserver,
    JobTiming,
    Outcome,
    RunResult,
    backoff,
    budget_delay,
)
from app.domain.tenancy.authentication import Principal
from app.domain.tenancy.usage import UsageLedger

# The logger name operators already filter fold lines by.
log = logging.getLogger("recollect.jobs")


class Fold:
    """Folds a session's overflow into its summary; ``run`` returns (outcome, retry delay)."""

    def __init__(
        self,
        folding: FoldingStore,
        principal_for: Callable[[str], Principal | None],
        usage: UsageLedger,
        summarizer: Summarizer,
        timing: JobTiming,
        *,
        rng: random.Random | None = None,
        observer: JobObserver | None = None,
    ) -> None:
        self._folding = folding
        self._principal_for = principal_for
        self._usage = usage
        self.summarizer = summarizer
        self.timing = timing
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self.observer = observer or JobObserver()

    def still_due(self, principal: Principal, session_id: str) -> bool:
        length, window_tokens = self._folding.window_stats(principal.tenant_id, session_id)
        policy = principal.policy
        return overflows(
            length, window_tokens, window_size=policy.window_size, window_tokens=policy.window_tokens
        )

    def close(self) -> None:
        close = getattr(self.summarizer, "close", None)
        if close is not None:
            close()

    def run(self, tenant_id: str, session_id: str) -> RunResult:
        principal = self._principal_for(tenant_id)
        if principal is None:
            return RunResult(Outcome.GONE)
        return run_locked(
            lambda token: self._folding.begin_fold(
                tenant_id, session_id, lock_token=token, lock_seconds=self.timing.lock_seconds
            ),
            lambda token, state: self._locked(principal, session_id, token, state),
            lambda token: self._folding.unlock(tenant_id, session_id, token),
        )

    def _locked(self, principal: Principal, session_id: str, token: str, state: FoldState) -> RunResult:
        tenant_id, policy = principal.tenant_id, principal.policy
        plan = plan_fold(state.messages, window_size=policy.window_size, window_tokens=policy.window_tokens)
        if plan is None:
            return self._finish(principal, session_id, token, None).result()
        budget = policy.summary_token_budget_daily
        deferred = (
            budget_delay(self._usage.tokens_spent_today(tenant_id), budget, self.timing.budget_recheck)
            if budget
            else None
        )
        if deferred is not None:
            # Nothing is dropped: the messages wait in the window (GET shows them as
            # pending) until the budget renews or is raised.
            self._folding.unlock(tenant_id, session_id, token)
            return RunResult(Outcome.DEFERRED, deferred)
        lines = [Line(str(m["role"]), str(m["content"])) for m in plan.messages]
        started = time.perf_counter()
        try:
            result = self.summarizer.summarize(
                state.summary, lines, model=policy.summary_model, prompt=policy.summary_prompt
            )
        except SummarizerError as exc:
            failures = self._folding.note_failure(tenant_id, session_id, gen=state.gen, code=exc.code)
            self._folding.unlock(tenant_id, session_id, token)
            if failures is None:
                return RunResult(Outcome.GONE)
            delay = backoff(failures, exc.retry_after, self.timing, self._rng)
            log.warning(
                "summarization failed tenant=%s code=%s failures=%s retry_in=%.1fs",
                tenant_id,
                exc.code,
                failures,
                delay,
            )
            return RunResult(Outcome.FAILED, delay)
        if result.calls:
            self.observer.llm(
                tenant_id, time.perf_counter() - started, result.prompt_tokens, result.completion_tokens
            )
            self._usage.record_llm(
                tenant_id,
                calls=result.calls,
                prompt_tokens=result.prompt_tokens,
                completion_tokens=result.completion_tokens,
            )
        commit = FoldCommit(
            gen=state.gen,
            expected_watermark=state.watermark,
            tokens_spent=result.total_tokens,
            summary=result.summary,
            folded_tokens=plan.tokens,
            folded_ids=plan.ids,
            archive=policy.long_term_memory,
        )
        finished = self._finish(principal, session_id, token, commit)
        log.info(
            "fold tenant=%s status=%s folded=%d llm_calls=%d tokens=%d ms=%.0f",
            tenant_id,
            finished.status,
            len(plan.ids),
            result.calls,
            result.total_tokens,
            (time.perf_counter() - started) * 1000,
        )
        return finished.result()

    def _finish(
        self, principal: Principal, session_id: str, token: str, commit: FoldCommit | None
    ) -> FinishedRun:
        policy = principal.policy
        return self._folding.finish_fold(
            principal.tenant_id,
            session_id,
            commit,
            lock_token=token,
            window_size=policy.window_size,
            window_tokens=policy.window_tokens,
        )
