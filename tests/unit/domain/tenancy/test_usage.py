"""Per-tenant usage: every counter all-time and per UTC day, in one hash per tenant."""

from __future__ import annotations

import pytest

from app.domain.clock import utc_day
from app.domain.errors import StoreUnavailable
from app.domain.memory.store import SessionStore
from app.domain.memory.stored_format import NewMessage
from app.domain.tenancy import usage as usage_module
from app.domain.tenancy.usage import COUNTERS, UsageLedger

from .fakes import unreachable_redis

DAY_1, DAY_2 = "2026-03-01", "2026-03-02"


class Calendar:
    """The UTC day the ledger believes it is."""

    def __init__(self, day: str) -> None:
        self.day = day


@pytest.fixture
def calendar(monkeypatch) -> Calendar:
    calendar = Calendar(DAY_1)
    monkeypatch.setattr(usage_module, "utc_day", lambda: calendar.day)
    return calendar


def zeros() -> dict[str, dict[str, int]]:
    return {name: {"total": 0, "today": 0} for name in COUNTERS}


def test_a_tenant_without_usage_reports_zero_for_every_counter(usage, calendar):
    assert usage.report("acme", sessions=0) == {"tenant_id": "acme", "day": DAY_1, "sessions": 0, **zeros()}


def test_the_report_carries_the_session_count_it_is_given(usage, calendar):
    assert usage.report("acme", sessions=7)["sessions"] == 7


def test_the_report_covers_exactly_the_documented_counters(usage, calendar):
    assert COUNTERS == ("messages", "llm_calls", "prompt_tokens", "completion_tokens", "rate_limited")
    assert set(usage.report("acme", sessions=0)) == {"tenant_id", "day", "sessions", *COUNTERS}


def test_llm_usage_adds_to_the_totals_and_to_todays_counts(usage, calendar):
    usage.record_llm("acme", calls=2, prompt_tokens=300, completion_tokens=40)
    usage.record_llm("acme", calls=1, prompt_tokens=100, completion_tokens=10)
    report = usage.report("acme", sessions=1)
    assert report["llm_calls"] == {"total": 3, "today": 3}
    assert report["prompt_tokens"] == {"total": 400, "today": 400}
    assert report["completion_tokens"] == {"total": 50, "today": 50}
    assert report["messages"] == report["rate_limited"] == {"total": 0, "today": 0}


def test_each_rate_limited_request_counts_once(usage, calendar):
    for _ in range(3):
        usage.record_rate_limited("acme")
    assert usage.report("acme", sessions=0)["rate_limited"] == {"total": 3, "today": 3}
    assert usage.tokens_spent_today("acme") == 0


def test_a_new_utc_day_starts_todays_counts_at_zero_and_keeps_the_totals(usage, calendar):
    usage.record_llm("acme", calls=1, prompt_tokens=100, completion_tokens=20)
    usage.record_rate_limited("acme")
    calendar.day = DAY_2
    report = usage.report("acme", sessions=0)
    assert report["day"] == DAY_2
    assert report["llm_calls"] == {"total": 1, "today": 0}
    assert report["prompt_tokens"] == {"total": 100, "today": 0}
    assert report["rate_limited"] == {"total": 1, "today": 0}
    usage.record_llm("acme", calls=1, prompt_tokens=5, completion_tokens=1)
    assert usage.report("acme", sessions=0)["prompt_tokens"] == {"total": 105, "today": 5}


def test_tokens_spent_today_are_todays_prompt_and_completion_tokens(usage, calendar):
    usage.record_llm("acme", calls=4, prompt_tokens=300, completion_tokens=45)
    assert usage.tokens_spent_today("acme") == 345


def test_tokens_spent_on_earlier_days_do_not_count_against_today(usage, calendar):
    usage.record_llm("acme", calls=1, prompt_tokens=1_000, completion_tokens=500)
    calendar.day = DAY_2
    assert usage.tokens_spent_today("acme") == 0
    usage.record_llm("acme", calls=1, prompt_tokens=10, completion_tokens=2)
    assert usage.tokens_spent_today("acme") == 12


def test_a_tenant_that_never_called_the_llm_has_spent_no_tokens(usage, calendar):
    assert usage.tokens_spent_today("acme") == 0


def test_usage_is_counted_per_tenant(usage, calendar):
    usage.record_llm("acme", calls=1, prompt_tokens=10, completion_tokens=1)
    usage.record_rate_limited("globex")
    assert usage.tokens_spent_today("acme") == 11
    assert usage.tokens_spent_today("globex") == 0
    assert usage.report("globex", sessions=0)["llm_calls"] == {"total": 0, "today": 0}
    assert usage.report("acme", sessions=0)["rate_limited"] == {"total": 0, "today": 0}


def test_counters_live_in_one_hash_per_tenant_with_a_field_per_counter_and_per_day(
    usage, calendar, fake_redis, keyspace
):
    usage.record_llm("acme", calls=1, prompt_tokens=7, completion_tokens=0)
    assert keyspace.usage("acme") == "rc:{acme}:usage"
    assert fake_redis.hgetall("rc:{acme}:usage") == {
        b"llm_calls": b"1",
        f"llm_calls:{DAY_1}".encode(): b"1",
        b"prompt_tokens": b"7",
        f"prompt_tokens:{DAY_1}".encode(): b"7",
    }, "a zero amount writes no field"


def test_recording_nothing_writes_nothing(usage, calendar, fake_redis, keyspace):
    usage.record_llm("acme", calls=0, prompt_tokens=0, completion_tokens=0)
    assert not fake_redis.exists(keyspace.usage("acme"))


def test_messages_appended_to_a_session_are_counted_in_the_same_ledger(fake_redis, keyspace, usage):
    sessions = SessionStore(fake_redis, keyspace)
    sessions.append("acme", "s1", [NewMessage("Human", "hi", None, 1), NewMessage("AI", "hello", None, 1)])
    sessions.append("acme", "s2", [NewMessage("Human", "again", None, 1)])
    report = usage.report("acme", sessions=2)
    assert report["day"] == utc_day()
    assert report["messages"] == {"total": 3, "today": 3}


@pytest.mark.parametrize(
    "call",
    [
        lambda u: u.record_llm("acme", calls=1, prompt_tokens=1, completion_tokens=1),
        lambda u: u.record_rate_limited("acme"),
        lambda u: u.tokens_spent_today("acme"),
        lambda u: u.report("acme", sessions=0),
    ],
)
def test_a_redis_outage_surfaces_as_store_unavailable(call, keyspace):
    ledger = UsageLedger(unreachable_redis(), keyspace)
    with pytest.raises(StoreUnavailable) as caught:
        call(ledger)
    assert caught.value.cause == "ConnectionError"
