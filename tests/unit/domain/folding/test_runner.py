"""The fold schedule in one process: the pool, the claims that feed it, the sweeper."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from app.domain.folding.summarizer import SummarizerError
from app.domain.memory.stored_format import NewMessage
from app.domain.scheduling import runner as runner_module
from app.domain.scheduling.claims import FoldClaim
from app.domain.scheduling.runner import JobRunner, ScheduleConfig

from .fakes import MESSAGE_TOKENS, TENANT, wait_until, window_ids

LEASE = 5.0


@pytest.fixture
def make_runner(fold, schedule, tenants, keyspace, observer, summarizer) -> Iterator[Callable]:
    made: list[JobRunner] = []

    def make(**config) -> JobRunner:
        settings = {
            "workers": 2,
            "sweep_interval": 0.05,
            "lease_seconds": LEASE,
            "busy_retry": 0.05,
            "conflict_retry": 0.01,
        } | config
        runner = JobRunner(fold, schedule, tenants, keyspace, ScheduleConfig(**settings), observer=observer)
        made.append(runner)
        return runner

    try:
        yield make
    finally:
        if summarizer.gate is not None:
            summarizer.gate.set()  # never leave a worker blocked
        for runner in made:
            runner.shutdown()


def due_score(fake_redis, keyspace, session_id: str) -> float | None:
    return fake_redis.zscore(keyspace.due, keyspace.due_member(TENANT, session_id))


def block(summarizer) -> threading.Event:
    summarizer.gate = threading.Event()
    return summarizer.gate


def test_request_fold_on_an_overflowing_session_folds_it_in_the_pool(
    fold_store, make_runner, seed, sessions, observer, schedule
):
    runner = make_runner(sweep_interval=60)
    seed("s1", 7)
    runner.request_fold(TENANT, "s1")
    assert wait_until(lambda: "done" in observer.outcomes and schedule.stats().sessions == 0)
    assert window_ids(fold_store, "s1") == [6, 7]
    assert fold_store.fold_state(TENANT, "s1").summary == "m1,m2,m3,m4,m5"


def test_request_fold_never_runs_the_fold_in_the_callers_thread(make_runner, seed, summarizer):
    runner = make_runner(sweep_interval=60)
    seed("s1", 7)
    gate = block(summarizer)
    started = time.monotonic()
    runner.request_fold(TENANT, "s1")
    assert time.monotonic() - started < 1.0, "the caller must not wait for the fold"
    assert summarizer.entered.wait(3)
    gate.set()


def test_messages_appended_during_a_fold_are_folded_by_a_follow_up_fold(
    fold_store, make_runner, seed, sessions, observer, summarizer, policy
):
    runner = make_runner(sweep_interval=60)
    seed("s1", 7)
    summarizer.during = lambda: seed("s1", 5, start=8)
    runner.request_fold(TENANT, "s1")
    assert wait_until(lambda: observer.outcomes.count("done") == 2)
    assert wait_until(lambda: len(window_ids(fold_store, "s1")) <= policy.window_size)
    assert window_ids(fold_store, "s1") == [11, 12]


def append_as_a_post_does(runner, sessions, policy, session_id: str, count: int, start: int):
    """Append with the claim a POST passes to the append script (a single node)."""
    batch = [NewMessage("Human", f"m{i}", None, MESSAGE_TOKENS) for i in range(start, start + count)]
    claim = runner.prepare_claim(TENANT, session_id)
    result = sessions.append(
        TENANT, session_id, batch, fold_claim=claim, window_size=policy.window_size, window_tokens=None
    )
    if result.fold_claimed:
        runner.start_claimed(claim)
    return result


def test_request_fold_sends_nothing_while_the_sessions_fold_is_in_flight_here(
    make_runner, seed, summarizer, fake_redis, keyspace
):
    runner = make_runner(sweep_interval=60)
    seed("s1", 7)
    gate = block(summarizer)
    runner.request_fold(TENANT, "s1")
    assert summarizer.entered.wait(3)
    leased = due_score(fake_redis, keyspace, "s1")
    fake_redis.zadd(keyspace.due, {keyspace.due_member(TENANT, "s1"): 0})  # would be claimable
    runner.request_fold(TENANT, "s1")
    assert due_score(fake_redis, keyspace, "s1") == 0, "no claim was sent"
    fake_redis.zadd(keyspace.due, {keyspace.due_member(TENANT, "s1"): leased})
    other = runner.prepare_claim(TENANT, "s2")
    assert other.has_slot, "one of two workers is still free"
    gate.set()


def test_an_append_during_a_fold_is_refused_a_claim_and_the_fold_folds_it_afterwards(
    fold_store, make_runner, seed, sessions, summarizer, observer, policy, schedule
):
    runner = make_runner(sweep_interval=60)
    seed("s1", 7)
    gate = block(summarizer)
    runner.request_fold(TENANT, "s1")
    assert summarizer.entered.wait(3)
    assert append_as_a_post_does(runner, sessions, policy, "s1", 5, start=8).fold_claimed is False
    gate.set()
    assert wait_until(lambda: observer.outcomes.count("done") == 2 and schedule.stats().sessions == 0)
    assert window_ids(fold_store, "s1") == [11, 12]


def test_an_append_right_after_a_folds_commit_claims_the_next_fold_itself(
    fold_store, make_runner, seed, sessions, observer, policy, schedule, monkeypatch
):
    # The fold's commit has settled the due mark, and the runner still counts the fold as
    # in flight: the append's own claim must win, or nothing would fold what it added.
    runner = make_runner(sweep_interval=60)
    seed("s1", 7)
    finish = fold_store.finish_fold
    claimed: list[bool | None] = []

    def then_append(*args, **kwargs):
        finished = finish(*args, **kwargs)
        if not claimed:
            claimed.append(append_as_a_post_does(runner, sessions, policy, "s1", 5, start=8).fold_claimed)
        return finished

    monkeypatch.setattr(fold_store, "finish_fold", then_append)
    runner.request_fold(TENANT, "s1")
    assert wait_until(lambda: observer.outcomes.count("done") == 2 and schedule.stats().sessions == 0)
    assert claimed == [True]
    assert window_ids(fold_store, "s1") == [11, 12]


def test_prepare_claim_has_no_slot_when_every_worker_is_busy(make_runner, seed, summarizer):
    runner = make_runner(workers=1, sweep_interval=60)
    seed("s1", 7)
    gate = block(summarizer)
    runner.request_fold(TENANT, "s1")
    assert summarizer.entered.wait(3)
    claim = runner.prepare_claim(TENANT, "s2")
    assert claim is not None
    assert claim.has_slot is False
    assert claim.member == "acme:s2"
    assert claim.lease_until - claim.now == pytest.approx(LEASE)
    gate.set()


def test_a_request_without_a_free_worker_leaves_the_session_due_for_later(
    fold_store, make_runner, seed, summarizer, fake_redis, keyspace, sessions
):
    runner = make_runner(workers=1, sweep_interval=60)
    seed("s1", 7)
    seed("s2", 7)
    gate = block(summarizer)
    runner.request_fold(TENANT, "s1")
    assert summarizer.entered.wait(3)
    before = time.time()
    runner.request_fold(TENANT, "s2")
    score = due_score(fake_redis, keyspace, "s2")
    assert score is not None and score <= time.time(), "marked due now, not leased"
    assert score >= before - 1
    gate.set()
    assert window_ids(fold_store, "s2") == list(range(1, 8))


def test_start_claimed_hands_the_claim_back_to_the_due_set_when_no_slot_is_free(
    make_runner, seed, summarizer, schedule, fake_redis, keyspace, sessions
):
    runner = make_runner(workers=1, sweep_interval=60)
    seed("s1", 7)
    seed("s2", 7)
    gate = block(summarizer)
    runner.request_fold(TENANT, "s1")
    assert summarizer.entered.wait(3)
    now = time.time()
    claim = FoldClaim(keyspace.due_member(TENANT, "s2"), now, now + LEASE, True)
    assert schedule.claim(claim), "won while the slot looked free (as in the append script)"
    runner.start_claimed(claim)
    score = due_score(fake_redis, keyspace, "s2")
    assert score is not None and score < claim.lease_until, "handed back, not left leased"
    assert score <= time.time()
    assert len(summarizer.calls) == 1, "s2 was not folded"
    gate.set()


def test_the_sweeper_folds_a_session_marked_due_in_the_past(
    fold_store, make_runner, seed, schedule, sessions, keyspace
):
    seed("s1", 7)
    schedule.mark_due([keyspace.due_member(TENANT, "s1")], time.time() - 10)
    runner = make_runner(sweep_interval=0.05)
    runner.start()
    assert wait_until(lambda: window_ids(fold_store, "s1") == [6, 7])
    assert wait_until(lambda: schedule.stats().sessions == 0)


def test_the_sweeper_leaves_sessions_due_in_the_future_alone(
    make_runner, seed, schedule, keyspace, summarizer, fake_redis
):
    seed("s1", 7)
    later = time.time() + 60
    schedule.mark_due([keyspace.due_member(TENANT, "s1")], later)
    make_runner(sweep_interval=0.02).start()
    time.sleep(0.2)
    assert summarizer.calls == []
    assert due_score(fake_redis, keyspace, "s1") == later


def test_sweep_claims_no_more_sessions_than_there_are_free_workers(
    make_runner, seed, schedule, keyspace, summarizer, observer
):
    runner = make_runner(workers=2, sweep_interval=60)
    for name in ("a", "b", "c"):
        seed(name, 7)
    schedule.mark_due([keyspace.due_member(TENANT, n) for n in ("a", "b", "c")], time.time() - 1)
    gate = block(summarizer)
    runner.start()
    assert runner.sweep() == 2
    assert wait_until(lambda: len(summarizer.calls) == 2)
    assert runner.sweep() == 0, "both workers are busy"
    gate.set()
    assert wait_until(lambda: observer.outcomes.count("done") == 2)
    assert wait_until(lambda: runner.sweep() == 1), "a freed worker takes the third session"
    assert wait_until(lambda: observer.outcomes.count("done") == 3)


def test_a_failing_fold_is_rescheduled_after_its_backoff_not_dropped(
    fold_store, make_runner, seed, summarizer, fake_redis, keyspace, observer, sessions
):
    runner = make_runner(sweep_interval=60)
    seed("s1", 7)
    summarizer.error = SummarizerError("slow down", retry_after=30.0, code="llm_rate_limited")
    started = time.time()
    runner.request_fold(TENANT, "s1")
    assert wait_until(lambda: (due_score(fake_redis, keyspace, "s1") or 0) > started + LEASE + 1)
    assert due_score(fake_redis, keyspace, "s1") >= started + 30.0
    assert observer.outcomes == ["queued", "failed", "retried"]
    assert window_ids(fold_store, "s1") == list(range(1, 8))


def test_a_crashing_fold_is_rescheduled_after_retry_base(
    make_runner, seed, summarizer, fake_redis, keyspace, observer, fold
):
    runner = make_runner(sweep_interval=60)
    seed("s1", 7)

    def crash():
        raise RuntimeError("redis went away")

    summarizer.during = crash
    started = time.time()
    runner.request_fold(TENANT, "s1")
    assert wait_until(lambda: observer.outcomes[-1:] == ["failed"])
    assert wait_until(lambda: (due_score(fake_redis, keyspace, "s1") or 1e18) < started + LEASE)
    score = due_score(fake_redis, keyspace, "s1")
    assert started + fold.timing.retry_base - 0.5 <= score <= time.time() + fold.timing.retry_base
    assert wait_until(lambda: runner.prepare_claim(TENANT, "s1") is not None), "no longer in flight"


def test_a_busy_fold_is_retried_after_busy_retry(
    make_runner, seed, take_fold_lock, fake_redis, keyspace, observer
):
    runner = make_runner(sweep_interval=60, busy_retry=20.0)
    seed("s1", 7)
    assert take_fold_lock("s1", "another-process", seconds=30)
    started = time.time()
    runner.request_fold(TENANT, "s1")
    assert wait_until(lambda: "busy" in observer.outcomes)
    assert wait_until(lambda: (due_score(fake_redis, keyspace, "s1") or 0) > started + LEASE + 1)
    assert due_score(fake_redis, keyspace, "s1") == pytest.approx(started + 20.0, abs=1.0)


def test_a_deferred_fold_is_retried_when_the_budget_is_rechecked(
    make_runner, seed, usage, tenants, defaults, fake_redis, keyspace, observer, fold
):
    from app.domain.tenancy.policy import Policy

    tenants.add(TENANT, defaults.resolve(Policy(window_size=4, summary_token_budget_daily=10)))
    usage.record_llm(TENANT, calls=1, prompt_tokens=10, completion_tokens=0)
    runner = make_runner(sweep_interval=60)
    seed("s1", 7)
    started = time.time()
    runner.request_fold(TENANT, "s1")
    assert wait_until(lambda: "deferred" in observer.outcomes)
    assert wait_until(lambda: (due_score(fake_redis, keyspace, "s1") or 0) > started + LEASE + 1)
    assert due_score(fake_redis, keyspace, "s1") <= time.time() + fold.timing.budget_recheck


def test_a_fold_for_a_removed_tenant_drops_the_due_mark(make_runner, seed, tenants, schedule, keyspace):
    seed("s1", 7)
    tenants.principals.clear()
    schedule.mark_due([keyspace.due_member(TENANT, "s1")], time.time() - 1)
    runner = make_runner(sweep_interval=0.02)
    runner.start()
    assert wait_until(lambda: schedule.stats().sessions == 0)


def test_shutdown_hands_queued_folds_back_to_the_due_set(
    fold_store, make_runner, seed, summarizer, fake_redis, keyspace, sessions, monkeypatch
):
    # One pool thread behind two slots, so the second fold really waits in the pool's queue.
    monkeypatch.setattr(
        runner_module,
        "ThreadPoolExecutor",
        lambda max_workers, thread_name_prefix: ThreadPoolExecutor(1, thread_name_prefix),
    )
    runner = make_runner(workers=2, sweep_interval=60)
    seed("s1", 7)
    seed("s2", 7)
    gate = block(summarizer)
    runner.request_fold(TENANT, "s1")
    assert summarizer.entered.wait(3)
    runner.request_fold(TENANT, "s2")
    leased = due_score(fake_redis, keyspace, "s2")
    assert leased is not None and leased > time.time() + 1, "s2 was claimed and queued"
    runner.shutdown(wait=False)
    handed_back = due_score(fake_redis, keyspace, "s2")
    assert handed_back is not None and handed_back <= time.time(), "due now, not at the lease's end"
    gate.set()
    assert wait_until(lambda: window_ids(fold_store, "s1") == [6, 7]), "the running fold finishes"
    time.sleep(0.1)
    assert [call.lines[0].content for call in summarizer.calls] == ["m1"], "the queued fold never ran"
    assert window_ids(fold_store, "s2") == list(range(1, 8))


def test_shutdown_stops_the_sweeper(make_runner, seed, schedule, keyspace, summarizer, fake_redis):
    runner = make_runner(sweep_interval=0.02)
    runner.start()
    runner.shutdown()
    seed("s1", 7)
    past = time.time() - 1
    schedule.mark_due([keyspace.due_member(TENANT, "s1")], past)
    time.sleep(0.2)
    assert summarizer.calls == []
    assert due_score(fake_redis, keyspace, "s1") == past


def test_after_shutdown_a_request_leaves_the_session_due_instead_of_folding(
    make_runner, seed, summarizer, fake_redis, keyspace
):
    runner = make_runner(sweep_interval=60)
    runner.start()
    runner.shutdown()
    seed("s1", 7)
    runner.request_fold(TENANT, "s1")
    time.sleep(0.05)
    assert summarizer.calls == []
    score = due_score(fake_redis, keyspace, "s1")
    assert score is not None and score <= time.time()


def test_shutdown_closes_the_summarizer(make_runner, summarizer):
    closed = []
    summarizer.close = lambda: closed.append(True)
    runner = make_runner()
    runner.start()
    runner.shutdown()
    assert closed == [True]


def test_start_is_idempotent_and_reports_started(make_runner):
    runner = make_runner()
    assert not runner.started
    runner.start()
    runner.start()
    assert runner.started


def test_the_observer_sees_queued_then_done_and_balanced_running_counts(make_runner, seed, observer):
    runner = make_runner(sweep_interval=60)
    seed("s1", 7)
    runner.request_fold(TENANT, "s1")
    assert wait_until(lambda: observer.running_deltas == [1, -1])
    assert observer.outcomes == ["queued", "done"]


def test_the_observer_sees_a_busy_fold(make_runner, seed, take_fold_lock, observer):
    runner = make_runner(sweep_interval=60, busy_retry=30.0)
    seed("s1", 7)
    take_fold_lock("s1", "someone-else", seconds=30)
    runner.request_fold(TENANT, "s1")
    assert wait_until(lambda: observer.running_deltas == [1, -1])
    assert observer.outcomes == ["queued", "busy"]


def test_fold_runs_one_fold_in_the_callers_thread(fold_store, make_runner, seed, sessions):
    runner = make_runner(sweep_interval=60)
    seed("s1", 7)
    assert runner.run_now(TENANT, "s1") == ("done", None, False)
    assert window_ids(fold_store, "s1") == [6, 7]
