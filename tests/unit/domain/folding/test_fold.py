"""One fold: lock → plan → summarize → commit, and the delays it asks for."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from app.domain.folding.summarizer import SummarizerError
from app.domain.scheduling.outcome import JobTiming, Outcome, RunResult, backoff, budget_delay
from app.domain.tenancy.policy import Policy

from .fakes import MESSAGE_TOKENS, TENANT, window_ids


def lock_key(keyspace, session_id: str = "s1") -> str:
    return keyspace.session(TENANT, session_id).lock


def meta(fake_redis, keyspace, field: str, session_id: str = "s1") -> bytes | None:
    return fake_redis.hget(keyspace.session(TENANT, session_id).meta, field)


def with_budget(tenants, defaults, budget: int) -> None:
    tenants.add(TENANT, defaults.resolve(Policy(window_size=4, summary_token_budget_daily=budget)))


# --- outcomes ------------------------------------------------------------------------------


def test_done_folds_the_oldest_messages_into_the_summary_leaving_half_the_window(
    fold_store, fold, seed, sessions, summarizer
):
    seed("s1", 7)
    assert fold.run(TENANT, "s1") == RunResult(Outcome.DONE, more_due=False), "nothing more is due"
    state = fold_store.fold_state(TENANT, "s1")
    assert [m["id"] for m in state.messages] == [6, 7], "window_size // 2 newest stay"
    assert state.summary == "m1,m2,m3,m4,m5"
    assert state.watermark == 5
    assert fold_store.window_stats(TENANT, "s1") == (2, 2 * MESSAGE_TOKENS)
    (call,) = summarizer.calls
    assert call.previous is None
    assert [(line.role, line.content) for line in call.lines] == [
        ("Human", "m1"),
        ("AI", "m2"),
        ("Human", "m3"),
        ("AI", "m4"),
        ("Human", "m5"),
    ]
    assert call.model == "test-model" and call.prompt == "Be brief."


def test_a_later_fold_sends_the_previous_summary_and_only_the_new_lines(
    fold_store, fold, seed, sessions, summarizer
):
    seed("s1", 7)
    fold.run(TENANT, "s1")
    seed("s1", 3, start=8)
    assert fold.run(TENANT, "s1")[0] == Outcome.DONE
    previous, new = summarizer.calls[1].previous, [line.content for line in summarizer.calls[1].lines]
    assert previous == "m1,m2,m3,m4,m5" and new == ["m6", "m7", "m8"]
    assert fold_store.fold_state(TENANT, "s1").summary == "m1,m2,m3,m4,m5+m6,m7,m8"
    assert window_ids(fold_store, "s1") == [9, 10]


def test_done_records_the_llm_spend_on_the_tenant_session_and_observer(
    fold, seed, sessions, usage, summarizer, observer
):
    seed("s1", 7)
    summarizer.prompt_tokens, summarizer.completion_tokens = 120, 15
    fold.run(TENANT, "s1")
    assert usage.tokens_spent_today(TENANT) == 135
    report = usage.report(TENANT, sessions=1)
    assert report["llm_calls"] == {"total": 1, "today": 1}
    assert report["prompt_tokens"]["today"] == 120 and report["completion_tokens"]["today"] == 15
    assert sessions.read(TENANT, "s1", limit=10).tokens == 135
    assert observer.llm_calls == [(TENANT, 120, 15)]


def test_nothing_when_the_window_is_within_policy(fold_store, fold, seed, sessions, summarizer):
    seed("s1", 4)
    assert fold.run(TENANT, "s1") == RunResult(Outcome.NOTHING, more_due=False)
    assert summarizer.calls == []
    assert window_ids(fold_store, "s1") == [1, 2, 3, 4]


def test_gone_for_an_unknown_tenant_without_taking_the_lock(fold, seed, tenants, summarizer, take_fold_lock):
    seed("s1", 7)
    tenants.principals.clear()
    assert fold.run(TENANT, "s1") == RunResult(Outcome.GONE)
    assert summarizer.calls == []
    assert take_fold_lock("s1", "probe", seconds=5), "the lock was never taken"


def test_gone_for_a_deleted_session(fold, seed, sessions, summarizer):
    seed("s1", 7)
    sessions.delete_session(TENANT, "s1")
    assert fold.run(TENANT, "s1") == RunResult(Outcome.GONE)
    assert summarizer.calls == []


def test_gone_for_a_session_that_never_existed(fold, summarizer):
    assert fold.run(TENANT, "never") == RunResult(Outcome.GONE)
    assert summarizer.calls == []


def test_busy_when_another_fold_holds_the_lock_and_its_lock_is_left_alone(
    fold, seed, take_fold_lock, summarizer, fake_redis, keyspace
):
    seed("s1", 7)
    assert take_fold_lock("s1", "someone-else", seconds=30)
    assert fold.run(TENANT, "s1") == RunResult(Outcome.BUSY)
    assert summarizer.calls == []
    assert fake_redis.get(lock_key(keyspace)) == b"someone-else"


def test_failed_backs_off_at_least_the_servers_retry_after_and_counts_the_failure(
    fold_store, fold, seed, sessions, summarizer, fake_redis, keyspace
):
    seed("s1", 7)
    summarizer.error = SummarizerError("slow down", retry_after=50.0, code="llm_rate_limited")
    outcome, delay = fold.run(TENANT, "s1")[:2]
    assert outcome == Outcome.FAILED
    assert delay is not None and delay >= 50.0
    assert meta(fake_redis, keyspace, "fails") == b"1"
    assert meta(fake_redis, keyspace, "err") == b"llm_rate_limited"
    assert window_ids(fold_store, "s1") == list(range(1, 8)), "nothing is folded"
    assert fold_store.fold_state(TENANT, "s1").summary is None


def test_failed_backoff_grows_with_the_sessions_failure_count(
    fold, seed, summarizer, timing, fake_redis, keyspace
):
    seed("s1", 7)
    summarizer.error = SummarizerError("boom")
    delays = [fold.run(TENANT, "s1")[1] for _ in range(4)]
    assert meta(fake_redis, keyspace, "fails") == b"4"
    for failures, delay in enumerate(delays, start=1):
        ceiling = timing.retry_base * 2 ** (failures - 1)
        assert ceiling / 2 <= delay <= ceiling


def test_failed_on_a_session_deleted_during_the_call_is_gone(
    fold, seed, sessions, summarizer, fake_redis, keyspace
):
    seed("s1", 7)
    summarizer.error = SummarizerError("boom")
    summarizer.during = lambda: sessions.delete_session(TENANT, "s1")
    assert fold.run(TENANT, "s1") == RunResult(Outcome.GONE)
    assert not fake_redis.exists(keyspace.session(TENANT, "s1").meta), "no failure count left behind"


def test_deferred_when_todays_token_budget_is_spent_and_the_messages_stay(
    fold_store, fold, seed, sessions, usage, tenants, defaults, summarizer, timing
):
    with_budget(tenants, defaults, 100)
    seed("s1", 7)
    usage.record_llm(TENANT, calls=1, prompt_tokens=80, completion_tokens=20)
    outcome, delay = fold.run(TENANT, "s1")[:2]
    assert outcome == Outcome.DEFERRED
    assert delay is not None and 0 < delay <= timing.budget_recheck
    assert summarizer.calls == []
    assert window_ids(fold_store, "s1") == list(range(1, 8))


def test_a_budget_not_yet_spent_lets_the_fold_run(fold, seed, usage, tenants, defaults):
    with_budget(tenants, defaults, 100)
    seed("s1", 7)
    usage.record_llm(TENANT, calls=1, prompt_tokens=80, completion_tokens=19)
    assert fold.run(TENANT, "s1")[0] == Outcome.DONE


def test_a_zero_budget_means_unlimited(fold, seed, usage, tenants, defaults):
    with_budget(tenants, defaults, 0)
    seed("s1", 7)
    usage.record_llm(TENANT, calls=1, prompt_tokens=10**9, completion_tokens=0)
    assert fold.run(TENANT, "s1")[0] == Outcome.DONE


def test_conflict_when_a_folded_message_is_deleted_during_the_call_and_the_tokens_still_count(
    fold_store, fold, seed, sessions, usage, summarizer
):
    seed("s1", 7)
    summarizer.during = lambda: sessions.delete_message(TENANT, "s1", 2)
    assert fold.run(TENANT, "s1") == RunResult(Outcome.CONFLICT)
    state = fold_store.fold_state(TENANT, "s1")
    assert [m["id"] for m in state.messages] == [1, 3, 4, 5, 6, 7], "nothing folded"
    assert state.summary is None, "the deleted message must not live on in the summary"
    assert state.watermark == 0
    spent = summarizer.prompt_tokens + summarizer.completion_tokens
    assert sessions.read(TENANT, "s1", limit=10).tokens == spent
    assert usage.tokens_spent_today(TENANT) == spent


def test_conflict_when_the_lock_expired_during_the_call(
    fold_store, fold, seed, sessions, summarizer, fake_redis, keyspace
):
    seed("s1", 7)
    summarizer.during = lambda: fake_redis.delete(lock_key(keyspace))
    assert fold.run(TENANT, "s1") == RunResult(Outcome.CONFLICT)
    assert window_ids(fold_store, "s1") == list(range(1, 8))


def test_a_session_deleted_during_the_call_is_not_written_into_and_the_retry_finds_it_gone(
    fold, seed, sessions, summarizer, fake_redis, keyspace
):
    seed("s1", 7)
    summarizer.during = lambda: sessions.delete_session(TENANT, "s1")
    outcome, _ = fold.run(TENANT, "s1")[:2]
    assert outcome in (Outcome.CONFLICT, Outcome.GONE)
    assert not fake_redis.exists(keyspace.session(TENANT, "s1").meta), "the deleted session stays deleted"
    assert not fake_redis.exists(keyspace.session(TENANT, "s1").window)
    assert fold.run(TENANT, "s1") == RunResult(Outcome.GONE)


def test_messages_appended_during_the_call_stay_in_the_window(fold_store, fold, seed, sessions, summarizer):
    seed("s1", 7)
    summarizer.during = lambda: seed("s1", 2, start=8)
    assert fold.run(TENANT, "s1")[0] == Outcome.DONE
    assert window_ids(fold_store, "s1") == [6, 7, 8, 9]


@pytest.mark.parametrize(
    ("setup", "messages", "expected"),
    [
        ("done", 7, Outcome.DONE),
        ("nothing", 3, Outcome.NOTHING),
        ("failed", 7, Outcome.FAILED),
        ("deferred", 7, Outcome.DEFERRED),
        ("conflict", 7, Outcome.CONFLICT),
        ("gone", 7, Outcome.GONE),
        ("crash", 7, None),
    ],
)
def test_the_lock_is_released_after_every_fold(
    setup,
    messages,
    expected,
    fold,
    seed,
    sessions,
    summarizer,
    usage,
    tenants,
    defaults,
    fake_redis,
    keyspace,
):
    seed("s1", messages)
    if setup == "failed":
        summarizer.error = SummarizerError("boom")
    elif setup == "deferred":
        with_budget(tenants, defaults, 1)
        usage.record_llm(TENANT, calls=1, prompt_tokens=5, completion_tokens=0)
    elif setup == "conflict":
        summarizer.during = lambda: sessions.delete_message(TENANT, "s1", 1)
    elif setup == "gone":
        sessions.delete_session(TENANT, "s1")
    elif setup == "crash":

        def crash():
            raise RuntimeError("not a SummarizerError")

        summarizer.during = crash
    if expected is None:
        with pytest.raises(RuntimeError):
            fold.run(TENANT, "s1")
    else:
        assert fold.run(TENANT, "s1")[0] == expected
    assert not fake_redis.exists(lock_key(keyspace)), "the fold's lock is still held"


def test_the_lock_lasts_lock_seconds_while_the_fold_runs(
    fold, seed, summarizer, fake_redis, keyspace, timing
):
    seed("s1", 7)
    seen: list[int] = []
    summarizer.during = lambda: seen.append(fake_redis.pttl(lock_key(keyspace)))
    fold.run(TENANT, "s1")
    (pttl,) = seen
    assert timing.lock_seconds * 1000 - 1000 < pttl <= timing.lock_seconds * 1000


# --- backoff -------------------------------------------------------------------------------


TIMING = JobTiming(retry_base=2.0, retry_max=60.0)


@pytest.mark.parametrize("failures", [1, 2, 3, 4, 5])
def test_backoff_is_exponential_with_equal_jitter(failures):
    rng = random.Random(failures)
    ceiling = TIMING.retry_base * 2 ** (failures - 1)
    delays = [backoff(failures, None, TIMING, rng) for _ in range(200)]
    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert len(set(delays)) > 100, "jittered, not a constant"
    assert max(delays) - min(delays) > ceiling / 4, "spread over the jitter range"


def test_backoff_never_exceeds_retry_max():
    rng = random.Random(1)
    for failures in (6, 7, 10, 50, 500):
        delay = backoff(failures, None, TIMING, rng)
        assert TIMING.retry_max / 2 <= delay <= TIMING.retry_max


def test_backoff_after_thousands_of_failures_is_still_retry_max():
    timing = JobTiming(retry_base=2.0, retry_max=300.0)
    delay = backoff(5000, None, timing, random.Random(1))
    assert 150.0 <= delay <= 300.0


def test_backoff_with_no_failures_counted_is_the_base_delay():
    assert 1.0 <= backoff(0, None, TIMING, random.Random(3)) <= 2.0


def test_backoff_respects_a_longer_retry_after_and_ignores_a_shorter_one():
    rng = random.Random(2)
    assert backoff(1, 90.0, TIMING, rng) == 90.0, "longer than retry_max too: the server asked"
    assert 1.0 <= backoff(1, 0.5, TIMING, rng) <= 2.0


def test_backoff_is_reproducible_with_a_seeded_rng():
    assert backoff(3, None, TIMING, random.Random(9)) == backoff(3, None, TIMING, random.Random(9))


# --- the daily budget ----------------------------------------------------------------------


NOON = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)


def test_budget_delay_is_none_while_the_budget_is_not_spent():
    assert budget_delay(99, 100, 60.0, now=NOON) is None


def test_budget_delay_is_none_without_a_budget():
    assert budget_delay(10**9, 0, 60.0, now=NOON) is None


def test_a_spent_budget_is_rechecked_every_recheck_seconds():
    assert budget_delay(100, 100, 60.0, now=NOON) == 60.0
    assert budget_delay(150, 100, 5.0, now=NOON) == 5.0


def test_a_spent_budget_waits_at_most_until_just_after_utc_midnight():
    now = datetime(2026, 3, 14, 23, 59, 30, tzinfo=UTC)
    delay = budget_delay(100, 100, 3600.0, now=now)
    assert delay is not None
    midnight = datetime(2026, 3, 15, tzinfo=UTC)
    assert midnight < now + timedelta(seconds=delay) <= midnight + timedelta(seconds=1)


def test_budget_delay_at_exactly_midnight_waits_for_the_next_midnight_at_most():
    now = datetime(2026, 3, 15, tzinfo=UTC)
    assert budget_delay(100, 100, 10**6, now=now) == 86_400 + 1
