"""Per-day usage is kept (no TTL, no pruning) and read back for the last N days: the
console charts the last 30."""

from __future__ import annotations

from app.domain.clock import utc_day
from app.domain.memory.store import SessionStore
from app.domain.memory.stored_format import NewMessage
from app.domain.tenancy.usage import DAY_MS, DayUsage, last_days

NOW = 1_780_000_000_000  # 2026-05-28, some time in the day


def test_last_days_are_oldest_first_and_end_today():
    days = last_days(30, now=NOW)
    assert len(days) == 30
    assert days[-1] == utc_day(NOW) == "2026-05-28"
    assert days[0] == utc_day(NOW - 29 * DAY_MS) == "2026-04-29"
    assert days == sorted(days)


def test_daily_reads_every_counter_of_every_day_for_several_tenants(usage, fake_redis, keyspace):
    old = utc_day(NOW - 29 * DAY_MS)
    today = utc_day(NOW)
    fake_redis.hset(
        keyspace.usage("acme"),
        mapping={
            f"messages:{old}": 7,
            f"llm_calls:{today}": 2,
            f"prompt_tokens:{today}": 100,
            f"completion_tokens:{today}": 20,
            f"rate_limited:{today}": 3,
            # 30 days ago falls outside the window asked for
            f"messages:{utc_day(NOW - 30 * DAY_MS)}": 99,
        },
    )
    daily = usage.daily(["acme", "globex"], days=30, now=NOW)
    acme = daily["acme"]
    assert [d.day for d in acme] == last_days(30, now=NOW)
    assert acme[0] == DayUsage(old, messages=7)
    assert acme[-1] == DayUsage(today, llm_calls=2, prompt_tokens=100, completion_tokens=20, rate_limited=3)
    assert acme[-1].tokens == 120
    assert sum(d.messages for d in acme) == 7
    assert daily["globex"] == [DayUsage(day) for day in last_days(30, now=NOW)]


def test_usage_is_kept_without_expiry_whatever_writes_it(usage, fake_redis, keyspace):
    """The day fields of a month ago are still there: neither the ledger's writes nor an
    append's count give the usage hash a TTL, and nothing prunes day fields."""
    key = keyspace.usage("acme")
    month_ago = utc_day(NOW - 45 * DAY_MS)
    fake_redis.hset(key, f"messages:{month_ago}", 5)
    usage.record_llm("acme", calls=1, prompt_tokens=10, completion_tokens=2)
    usage.record_rate_limited("acme")
    SessionStore(fake_redis, keyspace).append(
        "acme",
        "s1",
        [NewMessage("user", "hello", None, 3)],
        context=None,
        ttl_seconds=60,
        idempotency_key=None,
        may_create=True,
        fold_claim=None,
        window_size=12,
        window_tokens=None,
        indexed=False,
    )
    assert fake_redis.ttl(key) == -1
    assert fake_redis.hget(key, f"messages:{month_ago}") == b"5"
    today = usage.daily(["acme"], days=1)["acme"][0]
    assert (today.messages, today.llm_calls, today.tokens, today.rate_limited) == (1, 1, 12, 1)
