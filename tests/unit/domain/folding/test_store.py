"""The fold schedule's Redis state: the due set and its claims, the fold lock, the failure count."""

from __future__ import annotations

import time

from app.domain.folding.claims import FoldClaim
from app.domain.folding.store import DueStats

from .fakes import TENANT

MEMBER = "acme:s1"


def score(fake_redis, keyspace, member: str = MEMBER) -> float | None:
    return fake_redis.zscore(keyspace.due, member)


def lock_value(fake_redis, keyspace, session_id: str = "s1") -> bytes | None:
    return fake_redis.get(keyspace.session(TENANT, session_id).lock)


# --- claims ------------------------------------------------------------------------------


def test_a_claim_with_a_slot_marks_the_session_due_and_leases_it_to_the_caller(
    schedule, fake_redis, keyspace
):
    assert schedule.claim(FoldClaim(MEMBER, now=100.0, lease_until=250.0, has_slot=True)) is True
    assert score(fake_redis, keyspace) == 250.0


def test_a_claim_without_a_slot_only_marks_the_session_due_now(schedule, fake_redis, keyspace):
    assert schedule.claim(FoldClaim(MEMBER, now=100.0, lease_until=250.0, has_slot=False)) is False
    assert score(fake_redis, keyspace) == 100.0


def test_a_leased_member_cannot_be_claimed_again_until_its_lease_lapses(schedule, fake_redis, keyspace):
    assert schedule.claim(FoldClaim(MEMBER, now=100.0, lease_until=250.0, has_slot=True))
    assert not schedule.claim(FoldClaim(MEMBER, now=200.0, lease_until=350.0, has_slot=True))
    assert score(fake_redis, keyspace) == 250.0, "a refused claim must not move the lease"
    assert schedule.claim(FoldClaim(MEMBER, now=251.0, lease_until=400.0, has_slot=True))
    assert score(fake_redis, keyspace) == 400.0


def test_a_member_due_in_the_future_is_neither_claimed_nor_pulled_forward(schedule, fake_redis, keyspace):
    schedule.mark_due([MEMBER], 500.0)
    assert not schedule.claim(FoldClaim(MEMBER, now=100.0, lease_until=250.0, has_slot=True))
    assert score(fake_redis, keyspace) == 500.0


def test_a_member_marked_due_earlier_is_claimed_once_a_slot_is_free(schedule, fake_redis, keyspace):
    assert not schedule.claim(FoldClaim(MEMBER, now=100.0, lease_until=250.0, has_slot=False))
    assert schedule.claim(FoldClaim(MEMBER, now=101.0, lease_until=251.0, has_slot=True))
    assert score(fake_redis, keyspace) == 251.0


def test_claim_args_follow_the_scripts_order():
    assert FoldClaim("t:s", 1.5, 2.5, True).args == ["t:s", 1.5, 2.5, "1"]
    assert FoldClaim("t:s", 1.5, 2.5, False).args[-1] == "0"


def test_claim_due_leases_at_most_count_of_the_oldest_due_members(schedule, fake_redis, keyspace):
    schedule.mark_due(["t:a"], 10.0)
    schedule.mark_due(["t:b"], 20.0)
    schedule.mark_due(["t:c"], 30.0)
    assert schedule.claim_due(now=100.0, lease_until=300.0, count=2) == ["t:a", "t:b"]
    assert score(fake_redis, keyspace, "t:a") == score(fake_redis, keyspace, "t:b") == 300.0
    assert score(fake_redis, keyspace, "t:c") == 30.0


def test_claim_due_skips_leased_and_future_members(schedule, fake_redis, keyspace):
    schedule.mark_due(["t:a"], 10.0)
    schedule.mark_due(["t:future"], 500.0)
    assert schedule.claim_due(now=100.0, lease_until=300.0, count=10) == ["t:a"]
    assert schedule.claim_due(now=200.0, lease_until=400.0, count=10) == []
    assert score(fake_redis, keyspace, "t:future") == 500.0
    assert schedule.claim_due(now=300.0, lease_until=600.0, count=10) == ["t:a"], "its lease lapsed"


def test_claim_due_on_an_empty_due_set_claims_nothing(schedule):
    assert schedule.claim_due(now=100.0, lease_until=300.0, count=5) == []


def test_mark_due_reschedules_existing_members_and_ignores_an_empty_batch(schedule, fake_redis, keyspace):
    schedule.mark_due([MEMBER, "t:other"], 10.0)
    schedule.mark_due([MEMBER], 99.0)
    schedule.mark_due([], 5.0)
    assert score(fake_redis, keyspace) == 99.0
    assert score(fake_redis, keyspace, "t:other") == 10.0
    assert fake_redis.zcard(keyspace.due) == 2


def test_drop_removes_only_that_member(schedule, fake_redis, keyspace):
    schedule.mark_due([MEMBER, "t:other"], 10.0)
    schedule.drop(MEMBER)
    schedule.drop("t:never-due")
    assert score(fake_redis, keyspace) is None
    assert score(fake_redis, keyspace, "t:other") == 10.0


def test_due_stats_count_the_due_sessions_and_report_the_oldest_due_time(schedule):
    assert schedule.due_stats() == DueStats(sessions=0, oldest_due_at=None)
    schedule.mark_due(["t:late"], 300.0)
    schedule.mark_due(["t:early"], 50.5)
    schedule.mark_due(["t:mid"], 100.0)
    assert schedule.due_stats() == DueStats(sessions=3, oldest_due_at=50.5)


# --- the fold lock -------------------------------------------------------------------------


def test_the_fold_lock_is_exclusive_per_session(schedule):
    assert schedule.lock(TENANT, "s1", "token-a", seconds=30)
    assert not schedule.lock(TENANT, "s1", "token-b", seconds=30)
    assert schedule.lock(TENANT, "s2", "token-b", seconds=30), "another session has its own lock"


def test_the_fold_lock_expires_by_itself(schedule, fake_redis, keyspace):
    assert schedule.lock(TENANT, "s1", "token-a", seconds=0.05)
    time.sleep(0.12)
    assert lock_value(fake_redis, keyspace) is None
    assert schedule.lock(TENANT, "s1", "token-b", seconds=30)


def test_unlock_releases_only_with_the_token_that_holds_the_lock(schedule, fake_redis, keyspace):
    assert schedule.lock(TENANT, "s1", "token-a", seconds=30)
    schedule.unlock(TENANT, "s1", "token-b")
    assert lock_value(fake_redis, keyspace) == b"token-a"
    schedule.unlock(TENANT, "s1", "token-a")
    assert lock_value(fake_redis, keyspace) is None
    assert schedule.lock(TENANT, "s1", "token-c", seconds=30)


def test_unlock_after_expiry_does_not_release_the_next_holders_lock(schedule, fake_redis, keyspace):
    assert schedule.lock(TENANT, "s1", "old", seconds=0.05)
    time.sleep(0.12)
    assert schedule.lock(TENANT, "s1", "new", seconds=30)
    schedule.unlock(TENANT, "s1", "old")
    assert lock_value(fake_redis, keyspace) == b"new"


# --- the failure count ---------------------------------------------------------------------


def gen_of(sessions, session_id: str) -> str:
    gen = sessions.fold_state(TENANT, session_id).gen
    assert gen is not None
    return gen


def test_note_failure_counts_the_failures_and_keeps_the_last_error_code(
    schedule, sessions, seed, fake_redis, keyspace
):
    seed("s1", 2)
    gen = gen_of(sessions, "s1")
    assert schedule.note_failure(TENANT, "s1", gen=gen, code="llm_timeout") == 1
    assert schedule.note_failure(TENANT, "s1", gen=gen, code="llm_rate_limited") == 2
    meta = keyspace.session(TENANT, "s1").meta
    assert fake_redis.hget(meta, "err") == b"llm_rate_limited"


def test_note_failure_is_none_for_a_session_that_never_existed(schedule, fake_redis, keyspace):
    assert schedule.note_failure(TENANT, "ghost", gen="whatever", code="llm_error") is None
    assert not fake_redis.exists(keyspace.session(TENANT, "ghost").meta), "nothing is written"


def test_note_failure_is_none_once_the_session_is_deleted(schedule, sessions, seed):
    seed("s1", 2)
    gen = gen_of(sessions, "s1")
    sessions.delete_session(TENANT, "s1")
    assert schedule.note_failure(TENANT, "s1", gen=gen, code="llm_error") is None


def test_note_failure_is_none_for_a_recreated_session(schedule, sessions, seed, fake_redis, keyspace):
    seed("s1", 2)
    old_gen = gen_of(sessions, "s1")
    sessions.delete_session(TENANT, "s1")
    seed("s1", 1)
    assert gen_of(sessions, "s1") != old_gen
    assert schedule.note_failure(TENANT, "s1", gen=old_gen, code="llm_error") is None
    assert fake_redis.hget(keyspace.session(TENANT, "s1").meta, "fails") is None
