"""A due set: claims with leases, the sweep's batch claim, rescheduling, its statistics."""

from __future__ import annotations

from app.domain.scheduling.claims import FoldClaim
from app.domain.scheduling.due_set import DueStats

MEMBER = "acme:s1"


def score(fake_redis, keyspace, member: str = MEMBER) -> float | None:
    return fake_redis.zscore(keyspace.due, member)


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
    assert schedule.stats() == DueStats(sessions=0, oldest_due_at=None)
    schedule.mark_due(["t:late"], 300.0)
    schedule.mark_due(["t:early"], 50.5)
    schedule.mark_due(["t:mid"], 100.0)
    assert schedule.stats() == DueStats(sessions=3, oldest_due_at=50.5)
