"""One kind of background job in one process: a bounded pool, the claims that feed it and
a sweeper. Folding runs on one runner, indexing on another, each with its own due set.

* A POST whose window overflows marks the session due and, if this process's pool has
  room, claims it and submits it here. On a single Redis node the append script does the
  marking and claiming itself (``prepare_claim`` before it, ``start_claimed`` after: no
  extra round trip); on Cluster, ``request_fold`` claims on its own. The POST never waits.
  (An append only marks a session due for indexing; the sweeper claims it.)
* A sweeper thread claims sessions whose due time has come — jobs that could not be
  submitted, failed jobs after their backoff, and jobs orphaned by a killed worker once
  their lease lapses — so nothing depends on another message arriving.
* Each claimed session runs the job once; its outcome decides when the session is due again.
  On a single node a run settles its due mark itself, in the script that commits it
  (``RunResult.more_due``); otherwise the runner drops the mark and asks the job again.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from app.domain.keyspace import Keyspace
from app.domain.scheduling.claims import FoldClaim
from app.domain.scheduling.due_set import DueSet
from app.domain.scheduling.outcome import JobObserver, JobTiming, Outcome, RunResult
from app.domain.tenancy.authentication import Principal

log = logging.getLogger("recollect.jobs")


@dataclass(frozen=True, slots=True)
class ScheduleConfig:
    workers: int = 4
    sweep_interval: float = 1.0
    lease_seconds: float = 150.0
    busy_retry: float = 1.0
    conflict_retry: float = 0.05
    sweep_batch: int = 32


class Job(Protocol):
    """One session's background work (``folding.fold.Fold``, ``search.indexing.IndexJob``)."""

    timing: JobTiming
    observer: JobObserver

    def run(self, tenant_id: str, session_id: str) -> RunResult: ...

    def still_due(self, principal: Principal, session_id: str) -> bool:
        """After a run that settled: is there more to do already?"""
        ...

    def close(self) -> None: ...


class JobRunner:
    def __init__(
        self,
        job: Job,
        schedule: DueSet,
        principal_for: Callable[[str], Principal | None],
        keyspace: Keyspace,
        config: ScheduleConfig,
        *,
        name: str = "fold",
        clock: Callable[[], float] = time.time,
        observer: JobObserver | None = None,
    ) -> None:
        self._job = job
        self._schedule = schedule
        self._principal_for = principal_for
        self._keys = keyspace
        self.config = config
        self.name = name
        self._clock = clock
        self._observer = observer or JobObserver()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(config.workers)
        self._executor: ThreadPoolExecutor | None = None
        self._sweeper: threading.Thread | None = None
        self._stopping = threading.Event()
        self._queued: set[str] = set()
        # Queued or running here. A POST to a session whose fold is in flight in this
        # process needs no claim round trip: the fold re-checks the window when it ends.
        self._in_flight: set[str] = set()

    @property
    def job(self) -> Job:
        return self._job

    def run_now(self, tenant_id: str, session_id: str) -> RunResult:
        """Run the job once now, in the caller's thread (outside the schedule)."""
        return self._job.run(tenant_id, session_id)

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Create the pool and the sweeper in this process (idempotent)."""
        if self._executor is not None or self._stopping.is_set():
            return
        with self._lock:
            if self._executor is not None:
                return
            self._executor = ThreadPoolExecutor(
                max_workers=self.config.workers, thread_name_prefix=f"recollect-{self.name}"
            )
            self._sweeper = threading.Thread(
                target=self._sweep_forever, name=f"recollect-{self.name}-sweeper", daemon=True
            )
            self._sweeper.start()

    @property
    def started(self) -> bool:
        return self._executor is not None

    def shutdown(self, *, wait: bool = True) -> None:
        """Let running jobs finish; queued ones go back to the due set at once."""
        self._stopping.set()
        executor = self._executor
        if executor is not None:
            executor.shutdown(wait=wait, cancel_futures=True)
        with self._lock:
            pending = list(self._queued)
            self._queued.clear()
            self._in_flight.difference_update(pending)
        if pending:
            try:
                self._schedule.mark_due(pending, self._clock())
            except Exception:  # noqa: BLE001 - the claim lease will make them due anyway
                log.warning("could not hand back %d queued %s jobs", len(pending), self.name)
        if self._sweeper is not None and wait:
            self._sweeper.join(timeout=5)
        self._job.close()

    # --- scheduling ----------------------------------------------------------------------

    def request_fold(self, tenant_id: str, session_id: str) -> None:
        """Mark a session due and, when this process has a free slot, start folding it.
        Nothing to do when this process already has the session's job queued or running:
        the run re-checks the window when it ends."""
        if self._keys.due_member(tenant_id, session_id) in self._in_flight:
            return
        claim = self.prepare_claim(tenant_id, session_id)
        if self._schedule.claim(claim):
            self.start_claimed(claim)

    def prepare_claim(self, tenant_id: str, session_id: str) -> FoldClaim:
        """A claim to run (here or inside the append script). It claims only while this
        process has fold slots to spare; none is held meanwhile, so appends that do not
        overflow never keep a fold from its slot, and an unused claim needs no undoing.
        A claim of a session whose run is in flight is refused by the due set (its lease
        has not ended), so an append inside that run's window still leaves its mark."""
        self.start()
        member = self._keys.due_member(tenant_id, session_id)
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
        try:
            self._schedule.mark_due([member], self._clock())
        except Exception as exc:  # noqa: BLE001 - the append that claimed it already succeeded
            # Never fail the append for this: the lease lapses and a sweeper claims it then.
            log.warning(
                "could not hand a %s claim back: %s", self.name, getattr(exc, "cause", type(exc).__name__)
            )

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
        self._observer.outcome("queued")
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
            members = self._schedule.claim_due(
                now=now, lease_until=now + self.config.lease_seconds, count=slots
            )
        except BaseException:
            for _ in range(slots):
                self._slots.release()
            raise
        for _ in range(slots - len(members)):
            self._slots.release()
        for member in members:
            self._submit(member)
        return len(members)

    def _run(self, member: str) -> None:
        with self._lock:
            if member not in self._queued:  # handed back by shutdown, which forgot it too
                self._slots.release()
                return
            self._queued.discard(member)
        self._observer.running(1)
        try:
            tenant_id, session_id = self._keys.parse_due_member(member)
            try:
                outcome = self._job.run(tenant_id, session_id)
            finally:
                # Before the outcome is handled: its re-check of the window may fold again.
                with self._lock:
                    self._in_flight.discard(member)
            self._after(member, tenant_id, session_id, outcome)
        except Exception as exc:  # noqa: BLE001 - e.g. Redis down: retry after backoff
            log.warning("%s crashed: %s", self.name, type(exc).__name__)
            self._observer.outcome(Outcome.FAILED)
            self._reschedule(member, self._job.timing.retry_base)
        finally:
            self._observer.running(-1)
            self._slots.release()

    def _after(self, member: str, tenant_id: str, session_id: str, result: RunResult) -> None:
        status, retry_after = result.outcome, result.retry_after
        if status in (Outcome.DONE, Outcome.NOTHING, Outcome.GONE):
            if status == Outcome.DONE:
                self._observer.outcome(status)
            if result.more_due is None:
                self._settle(member, tenant_id, session_id)
            elif result.more_due:  # the run made the session due again already
                self.request_fold(tenant_id, session_id)
        elif status == Outcome.BUSY:
            self._observer.outcome(status)
            self._reschedule(member, self.config.busy_retry)
        elif status == Outcome.DEFERRED:
            self._observer.outcome(status)
            self._reschedule(member, retry_after or self._job.timing.budget_recheck)
        elif status == Outcome.CONFLICT:
            self._observer.outcome(status)
            self._reschedule(member, self.config.conflict_retry)
        else:
            self._observer.outcome(Outcome.FAILED)
            self._observer.outcome("retried")  # failed folds are always scheduled again
            delay = retry_after if retry_after is not None else self._job.timing.retry_base
            self._reschedule(member, delay)

    def _settle(self, member: str, tenant_id: str, session_id: str) -> None:
        """After a run that did not settle its due mark itself (Redis Cluster, or a run that
        ended before its finishing script): drop it, then keep going if there is more to do
        already. In this order, and after the run left ``_in_flight``: appends during the
        run skipped their request."""
        self._schedule.drop(member)
        principal = self._principal_for(tenant_id)
        if principal is None:
            return
        if self._job.still_due(principal, session_id):
            self.request_fold(tenant_id, session_id)

    def _reschedule(self, member: str, delay: float) -> None:
        self._schedule.mark_due([member], self._clock() + delay)
