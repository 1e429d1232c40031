"""The ride (``riding.py``): a rate charge offered, for the extent of one request's context,
to the one store call that runs it in its own round trip — taken once, absent elsewhere."""

from __future__ import annotations

import asyncio
import contextvars
import sys
import threading

import pytest
from limits import parse

from app.domain.errors import RateLimited
from app.domain.memory.store import SessionStore
from app.domain.memory.stored_format import NewMessage
from app.domain.ratelimit.charge import LimitHit, RateCharge, RateWindow
from app.domain.ratelimit.riding import Ride, charge_in_store, take_ride

from .oracle import limit_hit

CHARGE = RateCharge((LimitHit("p", "c", 5, 60),))
OTHER_CHARGE = RateCharge((LimitHit("p2", "c2", 1, 1),))
ADMITTED = RateWindow(True, 1, 0, 0.0, 1, 120.0)
REFUSED = RateWindow(False, 2, 3, 10.0, 7, 50.0)


def in_thread(target):
    """``target()``'s result, run in a new thread started from here."""
    results = []
    thread = threading.Thread(target=lambda: results.append(target()))
    thread.start()
    thread.join(timeout=5)
    assert results, "the thread did not finish"
    return results[0]


# --- one ride -----------------------------------------------------------------------------


def test_outside_a_ride_there_is_nothing_to_take():
    assert take_ride() is None


def test_a_ride_opens_untaken_with_the_charge_and_no_window_yet():
    with charge_in_store(CHARGE) as ride:
        assert ride == Ride(CHARGE, taken=False, window=None)


def test_the_open_ride_is_taken_by_the_first_store_call_only():
    with charge_in_store(CHARGE) as ride:
        taken = take_ride()
        assert taken is ride
        assert taken.charge is CHARGE
        assert ride.taken
        assert take_ride() is None, "a later store call (a fold started from here) must not charge again"
        assert take_ride() is None


def test_the_ride_ends_with_its_block():
    with charge_in_store(CHARGE):
        pass
    assert take_ride() is None


def test_the_ride_ends_with_its_block_even_when_the_block_raises():
    with pytest.raises(RuntimeError), charge_in_store(CHARGE):
        raise RuntimeError("the view failed")
    assert take_ride() is None


def test_a_ride_no_store_call_took_stays_untaken_so_the_caller_charges_it_alone():
    with charge_in_store(CHARGE) as ride:
        pass
    assert (ride.taken, ride.window) == (False, None)


def test_every_request_gets_a_fresh_ride_for_the_same_charge():
    with charge_in_store(CHARGE) as first:
        assert take_ride() is first
    with charge_in_store(CHARGE) as second:
        assert second is not first
        assert take_ride() is second


# --- nesting, threads and contexts --------------------------------------------------------


def test_a_nested_ride_shadows_the_outer_one_which_returns_untouched_after_it():
    with charge_in_store(CHARGE) as outer:
        with charge_in_store(OTHER_CHARGE) as inner:
            assert take_ride() is inner
        assert not outer.taken
        assert take_ride() is outer
    assert take_ride() is None


def test_an_outer_ride_taken_before_nesting_stays_taken_after_the_inner_one_ends():
    with charge_in_store(CHARGE):
        assert take_ride() is not None
        with charge_in_store(OTHER_CHARGE) as inner:
            pass
        assert not inner.taken
        assert take_ride() is None


@pytest.mark.skipif(
    bool(getattr(sys.flags, "thread_inherit_context", False)),
    reason="this interpreter starts threads in a copy of the starter's context",
)
def test_a_thread_started_during_a_ride_does_not_see_it():
    with charge_in_store(CHARGE) as ride:
        assert in_thread(take_ride) is None
        assert not ride.taken
        assert take_ride() is ride


def test_rides_of_concurrent_threads_are_each_their_own():
    both_open = threading.Barrier(2, timeout=5)
    taken: dict[str, tuple[Ride, Ride | None, Ride | None]] = {}

    def request(name: str, charge: RateCharge) -> None:
        with charge_in_store(charge) as ride:
            both_open.wait()  # both rides are open at once
            first = take_ride()
            both_open.wait()  # both have taken theirs
            taken[name] = (ride, first, take_ride())

    threads = [
        threading.Thread(target=request, args=("a", CHARGE)),
        threading.Thread(target=request, args=("b", OTHER_CHARGE)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    (ride_a, first_a, again_a), (ride_b, first_b, again_b) = taken["a"], taken["b"]
    assert first_a is ride_a and first_a.charge is CHARGE
    assert first_b is ride_b and first_b.charge is OTHER_CHARGE
    assert again_a is None and again_b is None


def test_rides_of_concurrent_tasks_are_each_their_own():
    async def request(charge: RateCharge) -> tuple[Ride, Ride | None]:
        with charge_in_store(charge) as ride:
            await asyncio.sleep(0)  # let the other task open its ride in between
            return ride, take_ride()

    async def both():
        return await asyncio.gather(request(CHARGE), request(OTHER_CHARGE))

    (ride_a, taken_a), (ride_b, taken_b) = asyncio.run(both())
    assert taken_a is ride_a and taken_a.charge is CHARGE
    assert taken_b is ride_b and taken_b.charge is OTHER_CHARGE


def test_a_copy_of_the_context_shares_the_ride_so_it_is_still_taken_only_once():
    # A fold runs in a copy of the submitting request's context.
    with charge_in_store(CHARGE) as ride:
        copy = contextvars.copy_context()
        assert copy.run(take_ride) is ride
        assert take_ride() is None, "taken in the copy is taken for the request"


def test_a_fold_started_after_the_store_took_the_ride_finds_none():
    with charge_in_store(CHARGE):
        assert take_ride() is not None
        copy = contextvars.copy_context()
    assert in_thread(lambda: copy.run(take_ride)) is None


def test_a_ride_opened_inside_a_copied_context_does_not_leak_out_of_it():
    def request() -> Ride | None:
        with charge_in_store(CHARGE) as ride:
            return ride

    ride = contextvars.copy_context().run(request)
    assert ride is not None
    assert take_ride() is None


# --- what the charge found ----------------------------------------------------------------


def test_recording_an_admitted_window_keeps_it_and_lets_the_request_go_on():
    ride = Ride(CHARGE)
    ride.record(ADMITTED)
    assert ride.window == ADMITTED


def test_recording_a_refused_window_keeps_it_then_raises_rate_limited():
    ride = Ride(CHARGE)
    with pytest.raises(RateLimited) as refused:
        ride.record(REFUSED)
    assert refused.value.code == "rate_limited"
    assert refused.value.retry_after == 1
    assert ride.window == REFUSED, "the headers of the 429 are computed from it"


# --- a store riding the charge in its own round trip ---------------------------------------


@pytest.fixture
def sessions(fake_redis, keyspace) -> SessionStore:
    return SessionStore(fake_redis, keyspace)


def one_message(text: str = "hi") -> list[NewMessage]:
    return [NewMessage("Human", text, None, 3)]


def test_an_append_runs_the_riding_charge_once_and_records_its_window(sessions, fake_redis, storage):
    hit = limit_hit(storage, parse("5/minute"), "acme")
    with charge_in_store(RateCharge((hit,))) as ride:
        sessions.append("acme", "s1", one_message())
        sessions.append("acme", "s1", one_message("again"))
    assert ride.taken
    assert (ride.window.admitted, ride.window.current_count) == (True, 1)
    assert fake_redis.get(hit.current_key) == b"1", "the second append was not charged"


def test_a_refused_append_raises_rate_limited_and_writes_nothing(sessions, fake_redis, storage):
    hit = limit_hit(storage, parse("1/minute"), "acme")
    with charge_in_store(RateCharge((hit,))):
        sessions.append("acme", "s1", one_message())
    with pytest.raises(RateLimited), charge_in_store(RateCharge((hit,))) as ride:
        sessions.append("acme", "s1", one_message("over the limit"))
    assert not ride.window.admitted
    assert sessions.read("acme", "s1", limit=10).window_length == 1
    assert fake_redis.get(hit.current_key) == b"1"


def test_a_read_runs_the_riding_charge_in_its_pipeline(sessions, fake_redis, storage):
    hit = limit_hit(storage, parse("1/minute"), "acme")
    sessions.append("acme", "s1", one_message())
    with charge_in_store(RateCharge((hit,))) as ride:
        assert sessions.read("acme", "s1", limit=10).window_length == 1
    assert (ride.window.admitted, ride.window.index, ride.window.current_count) == (True, 1, 1)
    with pytest.raises(RateLimited), charge_in_store(RateCharge((hit,))):
        sessions.read("acme", "s1", limit=10)


def test_store_calls_outside_a_ride_charge_nothing(sessions, fake_redis, storage):
    hit = limit_hit(storage, parse("1/minute"), "acme")
    with charge_in_store(RateCharge((hit,))):
        pass
    sessions.append("acme", "s1", one_message())
    sessions.read("acme", "s1", limit=10)
    assert not fake_redis.exists(hit.current_key)
