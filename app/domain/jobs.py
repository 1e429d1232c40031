"""The fold runner: summarization off the request path, exactly once, across processes.

* A POST whose window overflows marks the session due in the ``due`` sorted set (scored by
  when it may run) and, if this process's bounded pool has room, claims it and submits it
  here. On a single Redis node the append script does the marking and claiming itself
  (``prepare_claim`` before it, ``start_claimed`` after: no extra round trip); on Cluster,
  ``request_fold`` runs the same Lua on its own. The POST never waits for a fold.
* A sweeper thread per process claims sessions whose due time has come — folds that could
  not be submitted, failed folds after their backoff, and folds orphaned by a killed worker
  once their claim lease lapses — so nothing depends on another message arriving.
* A fold holds the session's Redis lock (random token, expiry) so at most one runs per
  session across all processes and hosts, and commits through ``SessionStore.commit_fold``,
  which re-checks the token, the session generation and the watermark atomically: a lock
  that expired mid-call, a DELETE, or a concurrent single-message delete makes the commit
  refuse instead of losing or duplicating a message.
"""

from __future__ import annotations

import contextvars
import logging
import random
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from redis import Redis
from redis.exceptions import RedisError

from app.domain.foldclaim import CLAIM_FOLD_LUA, FoldClaim
from app.domain.store import SessionStore
from app.domain.summarizer import (
    ChunkedSummarizer,
    ExtractiveSummarizer,
    Line,
    Summarizer,
    SummarizerError,
    openai_completion,
)
from app.domain.tenants import TenantRegistry
from app.domain.usage import UsageLedger
from app.domain.window import plan_fold

log = logging.getLogger("recollect.jobs")

# Claim a due member if its time has come: move its score to now + lease so no other
# sweeper takes it while this process works; the lease lapsing (a killed worker) makes
# it due again by itself.
_CLAIM_ONE = CLAIM_FOLD_LUA + "return claim_fold(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4])\n"

_CLAIM_DUE = """
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for i = 1, #members do redis.call('ZADD', KEYS[1], ARGV[2], members[i]) end
return members
"""

_RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_NOTE_FAILURE = """
if redis.call('HGET', KEYS[1], 'gen') ~= ARGV[1] then return -1 end
redis.call('HSET', KEYS[1], 'err', ARGV[2])
return redis.call('HINCRBY', KEYS[1], 'fails', 1)
"""


@dataclass(frozen=True, slots=True)
class RunnerConfig:
    workers: int = 4
    sweep_interval: float = 1.0
    lock_seconds: float = 120.0
    lease_seconds: float = 150.0
    retry_base: float = 2.0
    retry_max: float = 300.0
    busy_retry: float = 1.0
    sweep_batch: int = 32
    budget_recheck: float = 60.0


class FoldObserver:
    """Hooks the runner reports through (metrics); the default does nothing."""

    def outcome(self, name: str) -> None:
        pass

    def running(self, delta: int) -> None:
        pass

    def llm(self, tenant_id: str, seconds: float, prompt_tokens: int, completion_tokens: int) -> None:
        pass


class FoldOutcome:
    DONE = "done"  # committed
    NOTHING = "nothing"  # window within policy
    GONE = "gone"  # session or tenant deleted
    BUSY = "busy"  # another process holds the lock
    CONFLICT = "conflict"  # the window changed underneath; try again
    FAILED = "failed"  # the summarizer failed; back off
    DEFERRED = "deferred"  # the tenant's daily LLM budget is spent


class FoldRunner:
    def __init__(
        self,
        redis: Redis,
        store: SessionStore,
        registry: TenantRegistry,
        summarizer: Summarizer,
        config: RunnerConfig,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        metrics: FoldObserver | None = None,
    ) -> None:
        self._redis = redis
        self._store = store
        self._keys = store.keyspace
        self._registry = registry
        self.summarizer = summarizer
        self.config = config
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._usage = UsageLedger(redis, store.keyspace)
        self._metrics = metrics or FoldObserver()
        self._claim_one = redis.register_script(_CLAIM_ONE)
        self._claim_due = redis.register_script(_CLAIM_DUE)
        self._release = redis.register_script(_RELEASE_LOCK)
        self._note_failure = redis.register_script(_NOTE_FAILURE)
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(config.workers)
        self._executor: ThreadPoolExecutor | None = None
        self._sweeper: threading.Thread | None = None
        self._stopping = threading.Event()
        self._queued: set[str] = set()
        # Queued or running here. A POST to a session whose fold is in flight in this
        # process needs no claim round trip: the fold re-checks the window when it ends.
        self._in_flight: set[str] = set()
        self.stats = {"submitted": 0, "done": 0, "failed": 0, "conflicts": 0, "busy": 0, "deferred": 0}

    _OUTCOME_NAMES = {"submitted": "queued", "conflicts": "conflict"}

    def _count(self, stat: str) -> None:
        self.stats[stat] += 1
        self._metrics.outcome(self._OUTCOME_NAMES.get(stat, stat))

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Create the pool and the sweeper in this process (idempotent)."""
        if self._executor is not None or self._stopping.is_set():
            return
        with self._lock:
            if self._executor is not None:
                return
            self._executor = ThreadPoolExecutor(
                max_workers=self.config.workers, thread_name_prefix="recollect-fold"
            )
            self._sweeper = threading.Thread(
                target=self._sweep_forever, name="recollect-sweeper", daemon=True
            )
            self._sweeper.start()

    @property
    def started(self) -> bool:
        return self._executor is not None

    def shutdown(self, *, wait: bool = True) -> None:
        """Let running folds finish; queued ones go back to the due set at once."""
        self._stopping.set()
        executor = self._executor
        if executor is not None:
            executor.shutdown(wait=wait, cancel_futures=True)
        with self._lock:
            pending = list(self._queued)
            self._queued.clear()
            self._in_flight.difference_update(pending)
        if pending:
            now = self._clock()
            try:
                self._redis.zadd(self._keys.due, {m: now for m in pending})
            except Exception:  # noqa: BLE001 - the claim lease will make them due anyway
                log.warning("could not hand back %d queued folds", len(pending))
        if self._sweeper is not None and wait:
            self._sweeper.join(timeout=5)
        close = getattr(self.summarizer, "close", None)
        if close is not None:
            close()

    # --- scheduling ----------------------------------------------------------------------

    def request_fold(self, tenant_id: str, session_id: str) -> None:
        """Mark a session due and, when this process has a free slot, start folding it."""
        claim = self.prepare_claim(tenant_id, session_id)
        if claim is not None and self._claim_one(keys=[self._keys.due], args=claim.args) == 1:
            self.start_claimed(claim)

    def prepare_claim(self, tenant_id: str, session_id: str) -> FoldClaim | None:
        """A claim to run (here or inside the append script); None when this process
        already has the session's fold queued or running. It claims only while this
        process has fold slots to spare; none is held meanwhile, so appends that do not
        overflow never keep a fold from its slot, and an unused claim needs no undoing."""
        self.start()
        member = self._keys.due_member(tenant_id, session_id)
        if member in self._in_flight:
            return None
        now = self._clock()
        room = len(self._in_flight) < self.config.workers
        return FoldClaim(member, now, now + self.config.lease_seconds, room)

    def start_claimed(self, claim: FoldClaim) -> None:
        """Start a fold the claim won; if the slots filled up meanwhile, hand the claim back
        to the due set at once, for the next sweep here or in another process."""
        if self._slots.acquire(blocking=False):
            self._submit(claim.member)
        else:
            self._hand_back(claim.member)

    def _hand_back(self, member: str) -> None:
        """Make a claimed session due again now, for the next sweep here or elsewhere."""
        try:
            self._redis.zadd(self._keys.due, {member: self._clock()})
        except RedisError as exc:
            # The append that claimed it already succeeded: never fail it for this. The
            # lease lapses and a sweeper claims the session then.
            log.warning("could not hand a fold claim back: %s", type(exc).__name__)

    def _submit(self, member: str) -> None:
        """Run a claimed member; the caller holds one slot, released when the job ends."""
        executor = self._executor
        if executor is None or self._stopping.is_set():
            self._slots.release()
            self._hand_back(member)
            return
        with self._lock:
            self._queued.add(member)
            self._in_flight.add(member)
        self._count("submitted")
        try:
            # The fold runs in a copy of the submitting request's context, so its log lines
            # carry that request's id and tenant.
            executor.submit(contextvars.copy_context().run, self._run, member)
        except RuntimeError:  # executor shut down between the check and the submit
            with self._lock:
                self._queued.discard(member)
                self._in_flight.discard(member)
            self._slots.release()
            self._hand_back(member)

    def _sweep_forever(self) -> None:
        while not self._stopping.wait(self.config.sweep_interval):
            try:
                self.sweep()
            except Exception as exc:  # noqa: BLE001 - a Redis outage must not kill the thread
                log.warning("sweep failed: %s", type(exc).__name__)

    def sweep(self) -> int:
        """Claim as many due sessions as there are free slots; return how many started."""
        slots = 0
        while slots < self.config.sweep_batch and self._slots.acquire(blocking=False):
            slots += 1
        if not slots:
            return 0
        now = self._clock()
        try:
            members = self._claim_due(
                keys=[self._keys.due], args=[now, now + self.config.lease_seconds, slots]
            )
        except BaseException:
            for _ in range(slots):
                self._slots.release()
            raise
        for _ in range(slots - len(members)):
            self._slots.release()
        for raw in members:
            self._submit(raw.decode() if isinstance(raw, bytes) else raw)
        return len(members)

    def _run(self, member: str) -> None:
        with self._lock:
            if member not in self._queued:  # handed back by shutdown, which forgot it too
                self._slots.release()
                return
            self._queued.discard(member)
        self._metrics.running(1)
        try:
            tenant_id, session_id = self._keys.parse_due_member(member)
            try:
                outcome = self.fold(tenant_id, session_id)
            finally:
                # Before the outcome is handled: its re-check of the window may fold again.
                with self._lock:
                    self._in_flight.discard(member)
            self._after(member, tenant_id, session_id, outcome)
        except Exception as exc:  # noqa: BLE001 - e.g. Redis down: retry after backoff
            log.warning("fold crashed: %s", type(exc).__name__)
            self._count("failed")
            self._reschedule(member, self.config.retry_base)
        finally:
            self._metrics.running(-1)
            self._slots.release()

    def _after(self, member: str, tenant_id: str, session_id: str, outcome: tuple[str, float | None]) -> None:
        status, retry_after = outcome
        if status == FoldOutcome.DONE:
            self._count("done")
            self._settle(member, tenant_id, session_id)
        elif status in (FoldOutcome.NOTHING, FoldOutcome.GONE):
            # Appends during this fold skipped their own request (it was in flight here),
            # so the window is checked again rather than the due mark merely dropped.
            self._settle(member, tenant_id, session_id)
        elif status == FoldOutcome.BUSY:
            self._count("busy")
            self._reschedule(member, self.config.busy_retry)
        elif status == FoldOutcome.DEFERRED:
            self._count("deferred")
            self._reschedule(member, retry_after or self.config.budget_recheck)
        elif status == FoldOutcome.CONFLICT:
            self._count("conflicts")
            self._reschedule(member, 0.05)
        else:
            self._count("failed")
            self._metrics.outcome("retried")  # failed folds are always scheduled again
            self._reschedule(member, retry_after if retry_after is not None else self.config.retry_base)

    def _settle(self, member: str, tenant_id: str, session_id: str) -> None:
        """After a commit: drop the due mark, or keep going if the window still overflows."""
        self._redis.zrem(self._keys.due, member)
        tenant = self._registry.principal_for(tenant_id)
        if tenant is None:
            return
        length, window_tokens = self._store.window_stats(tenant_id, session_id)
        policy = tenant.policy
        if length > policy.window_size or (
            policy.window_tokens is not None and window_tokens > policy.window_tokens
        ):
            self.request_fold(tenant_id, session_id)

    def _reschedule(self, member: str, delay: float) -> None:
        self._redis.zadd(self._keys.due, {member: self._clock() + delay})

    def backoff(self, failures: int, retry_after: float | None) -> float:
        """Exponential backoff with equal jitter, never shorter than the server asked."""
        ceiling = min(self.config.retry_max, self.config.retry_base * 2 ** max(0, failures - 1))
        delay = ceiling / 2 + self._rng.uniform(0, ceiling / 2)
        return max(delay, retry_after or 0.0)

    # --- the fold ----------------------------------------------------------------------

    def fold(self, tenant_id: str, session_id: str) -> tuple[str, float | None]:
        """Fold one session's overflow into its summary. Returns (outcome, retry delay)."""
        principal = self._registry.principal_for(tenant_id)
        if principal is None:
            return FoldOutcome.GONE, None
        policy = principal.policy
        keys = self._keys.session(tenant_id, session_id)
        token = secrets.token_hex(16)
        if not self._redis.set(keys.lock, token, nx=True, px=int(self.config.lock_seconds * 1000)):
            return FoldOutcome.BUSY, None
        try:
            state = self._store.fold_state(tenant_id, session_id)
            if state.gen is None:
                return FoldOutcome.GONE, None
            plan = plan_fold(
                state.messages, window_size=policy.window_size, window_tokens=policy.window_tokens
            )
            if plan is None:
                return FoldOutcome.NOTHING, None
            deferred = self._budget_delay(tenant_id, policy.summary_token_budget_daily)
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
                failures = self._note_failure(keys=[keys.meta], args=[state.gen, exc.code])
                if failures == -1:
                    return FoldOutcome.GONE, None
                delay = self.backoff(int(failures), exc.retry_after)
                log.warning(
                    "summarization failed tenant=%s code=%s failures=%s retry_in=%.1fs",
                    tenant_id,
                    exc.code,
                    failures,
                    delay,
                )
                return FoldOutcome.FAILED, delay
            if result.calls:
                self._metrics.llm(
                    tenant_id, time.perf_counter() - started, result.prompt_tokens, result.completion_tokens
                )
                self._usage.record_llm(
                    tenant_id,
                    calls=result.calls,
                    prompt_tokens=result.prompt_tokens,
                    completion_tokens=result.completion_tokens,
                )
            status = self._store.commit_fold(
                tenant_id,
                session_id,
                lock_token=token,
                gen=state.gen,
                expected_watermark=state.watermark,
                folded_ids=plan.ids,
                folded_tokens=plan.tokens,
                summary=result.summary,
                tokens_spent=result.total_tokens,
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
                self._store.add_tokens(tenant_id, session_id, gen=state.gen, tokens=result.total_tokens)
            if status == "gone":
                return FoldOutcome.GONE, None
            return FoldOutcome.CONFLICT, None
        finally:
            self._release(keys=[keys.lock], args=[token])

    def _budget_delay(self, tenant_id: str, budget: int) -> float | None:
        """Seconds to wait when today's LLM budget is spent, else ``None``.

        Re-checked every minute (an operator may raise the budget) and at the latest
        just after UTC midnight, when the budget renews.
        """
        if budget <= 0 or self._usage.tokens_spent_today(tenant_id) < budget:
            return None
        now = datetime.now(UTC)
        midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        return min(self.config.budget_recheck, (midnight - now).total_seconds() + 1)


def build_summarizer(settings) -> Summarizer:  # noqa: ANN001 - config.Settings
    """The configured summarizer; the OpenAI client is made here, per process."""
    if settings.effective_summarizer == "extractive":
        return ExtractiveSummarizer()
    import openai

    timeout = settings.llm_timeout_seconds
    if settings.azure_configured:
        client = openai.AzureOpenAI(
            api_key=settings.azure_api_key.get_secret_value(),
            azure_endpoint=settings.azure_api_base,
            azure_deployment=settings.azure_deployment_id,
            api_version=settings.azure_api_version,
            timeout=timeout,
            max_retries=settings.llm_max_retries,
        )
    else:
        client = openai.OpenAI(
            api_key=settings.openai_api_key.get_secret_value() if settings.openai_api_key else "none",
            base_url=settings.openai_base_url,
            timeout=timeout,
            max_retries=settings.llm_max_retries,
        )
    return ChunkedSummarizer(
        complete=openai_completion(client, max_output_tokens=settings.summary_max_tokens),
        context_tokens=settings.summary_context_tokens,
        max_output_tokens=settings.summary_max_tokens,
        close=client.close,
    )


def build_runner(
    settings,  # noqa: ANN001 - config.Settings
    store: SessionStore,
    registry: TenantRegistry,
    metrics: FoldObserver | None = None,
) -> FoldRunner:
    llm_worst_case = settings.llm_timeout_seconds * (settings.llm_max_retries + 1)
    # Long enough for a fold of a few chunks at the LLM's worst case; a worker killed mid-fold
    # holds the session no longer than this (a fold outliving it cannot commit: fencing).
    lock_seconds = max(10.0, llm_worst_case * 4)
    config = RunnerConfig(
        workers=settings.summary_workers,
        sweep_interval=settings.sweep_interval_seconds,
        lock_seconds=lock_seconds,
        lease_seconds=lock_seconds + 5,
        retry_base=settings.summary_retry_base_seconds,
        retry_max=settings.summary_retry_max_seconds,
        budget_recheck=settings.budget_recheck_seconds,
    )
    return FoldRunner(store.redis, store, registry, build_summarizer(settings), config, metrics=metrics)
