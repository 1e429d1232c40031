"""A request's charge against its tenant's rate limits (``charge.py``, ``charge.lua``,
``charge_limits.lua``): limits' sliding-window-counter decisions, keys and arithmetic, with
the window it saw reported in the same round trip.

Time is frozen (``clock``) and moved by the tests, so TTLs are exact; limits' own storage
and strategy on the same fakeredis (``storage``, ``limiter``) are the oracle."""

from __future__ import annotations

import random

import pytest
import redis.exceptions
from limits import parse

from app.domain.ratelimit.charge import CHARGE_LIBRARY, LimitHit, RateCharge, RateWindow
from app.domain.redis_access import lua_source

from .oracle import limit_hit, stats_from

TENANT = "acme"
PER_MINUTE = parse("5/minute")


@pytest.fixture
def charge(fake_redis, script, clock):
    """Run a charge on its own round trip, as flask-limiter's storage does."""

    def charge(*hits: LimitHit) -> RateWindow:
        return script.run(fake_redis, RateCharge(hits))

    return charge


def counter(fake_redis, key: str) -> int | None:
    value = fake_redis.get(key)
    return None if value is None else int(value)


# --- the charge's shape -------------------------------------------------------------------


def test_a_charge_sends_each_limits_previous_then_current_key_in_evaluation_order():
    charge = RateCharge((LimitHit("p1", "c1", 5, 60), LimitHit("p2", "c2", 2, 1, cost=3)))
    assert charge.keys == ["p1", "c1", "p2", "c2"]


def test_a_charge_sends_each_limits_amount_expiry_and_cost_in_evaluation_order():
    charge = RateCharge((LimitHit("p1", "c1", 5, 60), LimitHit("p2", "c2", 2, 1, cost=3)))
    assert charge.args == [5, 60, 1, 2, 1, 3]


def test_a_hit_costs_one_request_unless_told_otherwise():
    assert LimitHit("p", "c", 5, 60).cost == 1


def test_a_reply_becomes_a_window_in_limits_units_counts_and_seconds():
    window = RateWindow.from_reply([0, 2, 3, 1500, 4, 250])
    assert window == RateWindow(
        admitted=False, index=2, previous_count=3, previous_ttl=1.5, current_count=4, current_ttl=0.25
    )
    assert window.sliding_window == (3, 1.5, 4, 0.25), "get_sliding_window's order"
    assert RateWindow.from_reply([1, 1, 0, 0, 1, 120000]).admitted is True


def test_hits_built_from_limits_storage_use_its_window_key_names(storage):
    hit = limit_hit(storage, PER_MINUTE, TENANT)
    assert hit.current_key == "LIMITS:{LIMITER/acme/5/1/minute}"
    assert hit.previous_key == "LIMITS:{LIMITER/acme/5/1/minute}/-1"
    assert (hit.amount, hit.expiry, hit.cost) == (5, 60, 1)


# --- one limit ----------------------------------------------------------------------------


def test_the_first_request_opens_a_current_window_that_lives_twice_the_expiry(charge, storage, fake_redis):
    hit = limit_hit(storage, PER_MINUTE, TENANT)
    window = charge(hit)
    assert window == RateWindow(True, 1, 0, 0.0, 1, 120.0)
    assert fake_redis.pttl(hit.current_key) == 120_000
    assert not fake_redis.exists(hit.previous_key)


def test_requests_are_admitted_up_to_the_limit_and_refused_after(charge, storage):
    hit = limit_hit(storage, PER_MINUTE, TENANT)
    admitted = [charge(hit) for _ in range(5)]
    assert all(window.admitted for window in admitted)
    assert [window.current_count for window in admitted] == [1, 2, 3, 4, 5]
    refused = [charge(hit) for _ in range(3)]
    assert not any(window.admitted for window in refused)
    assert {window.index for window in refused} == {1}


def test_a_refused_request_consumes_nothing(charge, storage, fake_redis, clock):
    hit = limit_hit(storage, PER_MINUTE, TENANT)
    for _ in range(5):
        charge(hit)
    clock.advance(10)
    ttl_before = fake_redis.pttl(hit.current_key)
    for _ in range(4):
        assert not charge(hit).admitted
    assert counter(fake_redis, hit.current_key) == 5
    assert fake_redis.pttl(hit.current_key) == ttl_before, "a refusal must not renew the window"


def test_a_refused_request_reports_the_full_window_it_saw(charge, storage, clock):
    hit = limit_hit(storage, PER_MINUTE, TENANT)
    for _ in range(5):
        charge(hit)
    clock.advance(12.5)
    assert charge(hit) == RateWindow(False, 1, 0, 0.0, 5, 107.5)


def test_an_admitted_request_reports_the_window_after_its_own_increment(charge, storage, clock):
    hit = limit_hit(storage, PER_MINUTE, TENANT)
    charge(hit)
    clock.advance(1.5)
    assert charge(hit) == RateWindow(True, 1, 0, 0.0, 2, 118.5)


def test_a_cost_counts_several_requests_at_once(charge, storage, fake_redis):
    three = limit_hit(storage, PER_MINUTE, TENANT, cost=3)
    two = limit_hit(storage, PER_MINUTE, TENANT, cost=2)
    assert charge(three).current_count == 3
    assert not charge(three).admitted, "3 + 3 is over 5"
    assert counter(fake_redis, three.current_key) == 3
    assert charge(two).admitted, "3 + 2 fits exactly"
    assert counter(fake_redis, two.current_key) == 5


def test_a_cost_above_the_limit_is_refused_on_fresh_counters_and_creates_none(charge, storage, fake_redis):
    hit = limit_hit(storage, PER_MINUTE, TENANT, cost=6)
    assert charge(hit) == RateWindow(False, 1, 0, 0.0, 0, 0.0)
    assert fake_redis.keys("*") == []


def test_a_limit_of_zero_refuses_every_request(charge, storage, fake_redis):
    hit = limit_hit(storage, parse("0/minute"), TENANT)
    assert not charge(hit).admitted
    assert fake_redis.keys("*") == []


def test_each_tenant_counts_in_its_own_window(charge, storage):
    for _ in range(5):
        charge(limit_hit(storage, PER_MINUTE, TENANT))
    assert not charge(limit_hit(storage, PER_MINUTE, TENANT)).admitted
    assert charge(limit_hit(storage, PER_MINUTE, "globex")).current_count == 1


# --- window rollover ----------------------------------------------------------------------


def test_the_window_does_not_roll_before_a_full_expiry_has_passed(charge, storage, clock):
    hit = limit_hit(storage, PER_MINUTE, TENANT)
    for _ in range(5):
        charge(hit)
    clock.advance(60.0)
    assert charge(hit) == RateWindow(False, 1, 0, 0.0, 5, 60.0)


def test_once_rolled_the_previous_window_counts_in_proportion_to_its_time_left(
    charge, storage, clock, fake_redis
):
    hit = limit_hit(storage, parse("10 per 10 seconds"), TENANT)
    for _ in range(10):
        charge(hit)
    clock.advance(10.001)
    # previous: 10 with 9.999 s left of 10 -> weighs floor(9.999) = 9: room for one.
    assert charge(hit) == RateWindow(True, 1, 10, 9.999, 1, 19.999)
    assert not charge(hit).admitted
    clock.advance(4.999)
    # 5 s left -> the previous weighs 5, plus 1 current: room for four more.
    assert [charge(hit).admitted for _ in range(5)] == [True] * 4 + [False]
    assert counter(fake_redis, hit.current_key) == 5
    assert counter(fake_redis, hit.previous_key) == 10, "the previous window is never charged"


def test_a_rolled_window_starts_from_zero_and_keeps_the_old_count_as_previous(charge, storage, clock):
    hit = limit_hit(storage, PER_MINUTE, TENANT)
    for _ in range(3):
        charge(hit)
    clock.advance(90)
    # 3 with 30 s of 60 left weighs floor(1.5) = 1; the new current holds this request.
    window = charge(hit)
    assert window == RateWindow(True, 1, 3, 30.0, 1, 90.0)


def test_after_two_idle_windows_the_counters_are_gone_and_the_limit_is_whole_again(
    charge, storage, clock, fake_redis
):
    hit = limit_hit(storage, PER_MINUTE, TENANT)
    for _ in range(6):
        charge(hit)
    clock.advance(120.001)
    assert fake_redis.keys("*") == []
    assert [charge(hit).admitted for _ in range(6)] == [True] * 5 + [False]


# --- several limits -----------------------------------------------------------------------


@pytest.fixture
def three_limits(storage) -> tuple[LimitHit, LimitHit, LimitHit]:
    """Evaluated in this order: 10/minute, 2/second, 100/hour."""
    return (
        limit_hit(storage, parse("10/minute"), TENANT),
        limit_hit(storage, parse("2/second"), TENANT),
        limit_hit(storage, parse("100/hour"), TENANT),
    )


def test_when_all_limits_admit_each_is_charged_and_the_first_is_reported(
    charge, three_limits, fake_redis, clock
):
    minute, second, hour = three_limits
    charge(minute)  # the first limit has its own history: the report must be its window
    clock.advance(5)
    window = charge(*three_limits)
    assert window == RateWindow(True, 1, 0, 0.0, 2, 115.0)
    assert [counter(fake_redis, hit.current_key) for hit in three_limits] == [2, 1, 1]


def test_each_limit_keeps_its_own_expiry(charge, three_limits, fake_redis):
    charge(*three_limits)
    assert [fake_redis.pttl(hit.current_key) for hit in three_limits] == [120_000, 2_000, 7_200_000]


def test_evaluation_stops_at_the_first_refusal_and_reports_that_limits_window(
    charge, three_limits, fake_redis
):
    minute, second, hour = three_limits
    assert charge(*three_limits).admitted
    assert charge(*three_limits).admitted
    window = charge(*three_limits)
    assert window == RateWindow(False, 2, 0, 0.0, 2, 2.0)
    # As flask-limiter does: the limits before the refusing one were charged, those after not.
    assert counter(fake_redis, minute.current_key) == 3
    assert counter(fake_redis, second.current_key) == 2
    assert counter(fake_redis, hour.current_key) == 2


def test_a_refusal_by_the_first_limit_charges_none_of_the_others(charge, storage, fake_redis):
    tight = limit_hit(storage, parse("1/minute"), TENANT)
    loose = limit_hit(storage, parse("100/minute"), "other")
    charge(tight)
    window = charge(tight, loose)
    assert (window.admitted, window.index) == (False, 1)
    assert not fake_redis.exists(loose.current_key)


def test_the_second_limit_of_a_charge_refuses_on_its_own_numbers(charge, storage, fake_redis):
    loose = limit_hit(storage, parse("100/minute"), TENANT)
    tight = limit_hit(storage, parse("3/second"), TENANT, cost=2)
    assert charge(loose, tight).admitted
    window = charge(loose, tight)
    assert (window.admitted, window.index, window.current_count) == (False, 2, 2)
    assert window.current_ttl == 2.0


def test_a_charge_without_limits_admits_and_names_no_limit(charge, fake_redis):
    assert charge() == RateWindow(True, 0, 0, 0.0, 0, 0.0)
    assert fake_redis.keys("*") == []


def test_the_library_finds_its_limits_at_any_offset_of_keys_and_arguments(fake_redis, storage, clock):
    # How a store's own script embeds the charge: its keys and arguments come first.
    minute = limit_hit(storage, parse("1/minute"), TENANT)
    second = limit_hit(storage, parse("3/second"), TENANT)
    charge = RateCharge((minute, second))
    source = lua_source(*CHARGE_LIBRARY) + "\nreturn charge_limits(2, 3, 2)"
    keys = ["store:own-key", *charge.keys]
    args = ["own-arg", "own-arg", *charge.args]
    first = RateWindow.from_reply(fake_redis.eval(source, len(keys), *keys, *args))
    assert first == RateWindow(True, 1, 0, 0.0, 1, 120.0)
    assert fake_redis.pttl(second.current_key) == 2_000
    assert not fake_redis.exists("store:own-key")
    refused = RateWindow.from_reply(fake_redis.eval(source, len(keys), *keys, *args))
    assert (refused.admitted, refused.index) == (False, 1)


# --- agreement with limits' own storage and strategy --------------------------------------


def test_the_reported_window_is_what_limits_reads_right_after(charge, storage, clock):
    item = parse("4 per 10 seconds")
    hit = limit_hit(storage, item, TENANT)
    for step in [0, 1, 2.5, 3, 4, 7.2, 10.001, 0.5, 6, 12, 30]:
        clock.advance(step)
        window = charge(hit)
        assert window.sliding_window == storage.get_sliding_window(item.key_for(TENANT), 10), step


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("limit", ["5 per 2 seconds", "3/second", "10/minute"])
def test_decisions_and_counters_agree_with_limits_step_by_step(
    charge, storage, limiter, clock, fake_redis, limit, seed
):
    # The same requests, at the same times, on two tenants: one charged here, one by limits.
    item = parse(limit)
    expiry = item.get_expiry()
    rng = random.Random(seed)
    ours_key, theirs_key = item.key_for("ours"), item.key_for("theirs")
    ours_hits = {cost: limit_hit(storage, item, "ours", cost=cost) for cost in range(item.amount + 2)}
    for step in range(100):
        clock.advance(expiry * rng.choice([0, 0, 0.001, 0.05, 0.3, 0.5, 0.999, 1.0, 1.0005, 1.7, 2.5]))
        cost = rng.choice([0, 1, 1, 1, 1, 2, 3, item.amount + 1])
        window = charge(ours_hits[cost])
        assert window.admitted == limiter.hit(item, "theirs", cost=cost), step
        theirs = storage.get_sliding_window(theirs_key, expiry)
        assert window.sliding_window == theirs, step
        assert storage.get_sliding_window(ours_key, expiry) == theirs, step
        assert limiter.get_window_stats(item, "ours") == limiter.get_window_stats(item, "theirs"), step
    assert fake_redis.get(storage.prefixed_key("{" + ours_key + "}")) == fake_redis.get(
        storage.prefixed_key("{" + theirs_key + "}")
    )


def test_charges_here_and_hits_by_limits_count_in_the_same_counters(charge, storage, limiter):
    hit = limit_hit(storage, PER_MINUTE, TENANT)
    decisions = []
    for turn in range(4):
        decisions.append(charge(hit).admitted)
        decisions.append(limiter.hit(PER_MINUTE, TENANT))
        assert limiter.get_window_stats(PER_MINUTE, TENANT).remaining == max(0, 5 - 2 * (turn + 1))
    assert decisions == [True] * 5 + [False] * 3
    assert not limiter.test(PER_MINUTE, TENANT)


def test_remaining_and_reset_from_the_reported_window_are_limits_own(charge, storage, limiter, clock):
    hit = limit_hit(storage, PER_MINUTE, TENANT)
    for _ in range(3):
        window = charge(hit)
        clock.advance(10)
    clock.advance(-10)
    # 3 counted, the window opened 20 s ago: 2 left, and the count resets in 40 s.
    stats = stats_from(storage, PER_MINUTE, window)
    assert (stats.remaining, stats.reset_time) == (2, clock.now + 40)
    assert stats == limiter.get_window_stats(PER_MINUTE, TENANT)


def test_a_refused_window_reports_none_remaining_and_limits_reset(charge, storage, limiter, clock):
    hit = limit_hit(storage, PER_MINUTE, TENANT)
    for _ in range(5):
        charge(hit)
    clock.advance(70)
    # Rolled: 5 previous with 50 s of 60 left weigh 4, one more fits, then refused.
    assert charge(hit).admitted
    refused = charge(hit)
    assert not refused.admitted
    stats = stats_from(storage, PER_MINUTE, refused)
    assert stats.remaining == 0
    assert stats == limiter.get_window_stats(PER_MINUTE, TENANT)


# --- the script's round trips -------------------------------------------------------------


def test_a_charge_queued_in_a_pipeline_settles_like_one_run_alone(script, fake_redis, storage, clock):
    hit = limit_hit(storage, PER_MINUTE, TENANT)
    charge = RateCharge((hit,))
    script.run(fake_redis, charge)  # the script is cached now
    pipe = fake_redis.pipeline(transaction=False)
    script.queue(pipe, charge)
    pipe.get("unrelated")
    reply, unrelated = pipe.execute(raise_on_error=False)
    assert script.settle(reply, fake_redis, charge) == RateWindow(True, 1, 0, 0.0, 2, 120.0)
    assert unrelated is None
    assert counter(fake_redis, hit.current_key) == 2


def test_a_charge_queued_after_the_script_cache_was_flushed_is_counted_once(
    script, fake_redis, storage, clock
):
    hit = limit_hit(storage, PER_MINUTE, TENANT)
    charge = RateCharge((hit,))
    fake_redis.script_flush()
    pipe = fake_redis.pipeline(transaction=False)
    script.queue(pipe, charge)
    (reply,) = pipe.execute(raise_on_error=False)
    assert isinstance(reply, redis.exceptions.NoScriptError)
    assert script.settle(reply, fake_redis, charge) == RateWindow(True, 1, 0, 0.0, 1, 120.0)
    assert counter(fake_redis, hit.current_key) == 1


def test_a_charge_run_after_the_script_cache_was_flushed_loads_it_again(script, fake_redis, storage, clock):
    hit = limit_hit(storage, PER_MINUTE, TENANT)
    script.run(fake_redis, RateCharge((hit,)))
    fake_redis.script_flush()
    assert script.run(fake_redis, RateCharge((hit,))).current_count == 2
    assert fake_redis.script_exists(script._script.sha) == [True]


def test_a_counter_of_the_wrong_type_fails_the_charge_instead_of_admitting_it(
    script, fake_redis, storage, clock
):
    hit = limit_hit(storage, PER_MINUTE, TENANT)
    fake_redis.rpush(hit.current_key, "not a counter")
    charge = RateCharge((hit,))
    with pytest.raises(redis.exceptions.ResponseError):
        script.run(fake_redis, charge)
    pipe = fake_redis.pipeline(transaction=False)
    script.queue(pipe, charge)
    (reply,) = pipe.execute(raise_on_error=False)
    with pytest.raises(redis.exceptions.ResponseError):
        script.settle(reply, fake_redis, charge)
