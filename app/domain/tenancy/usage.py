"""Per-tenant usage counters: what a tenant consumed, all-time and per UTC day.

One hash per tenant (``rc:{<tid>}:usage``) with a field per counter and one per counter
and day (``prompt_tokens:2026-11-24``). Appended messages are counted by the store in the
append's own pipeline, so the hot path pays no extra round trip; LLM spend is counted by
the fold; rate-limit rejections by the limiter's breach hook. The hash has no TTL and day
fields are never pruned (a few hundred bytes a day): the console charts the last 30 days.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis import Redis

from app.domain.clock import now_ms, utc_day
from app.domain.keyspace import Keyspace
from app.domain.redis_access import translates_outages

COUNTERS = ("messages", "llm_calls", "prompt_tokens", "completion_tokens", "rate_limited")
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class DayUsage:
    """One tenant's counters for one UTC day."""

    day: str
    messages: int = 0
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    rate_limited: int = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def last_days(days: int, *, now: int | None = None) -> list[str]:
    """The last ``days`` UTC days, oldest first, today last."""
    today = (now_ms() if now is None else now) // DAY_MS
    return [utc_day((today - back) * DAY_MS) for back in range(days - 1, -1, -1)]


@translates_outages
class UsageLedger:
    def __init__(self, redis: Redis, keyspace: Keyspace) -> None:
        self._redis = redis
        self._keys = keyspace

    def _add(self, tenant_id: str, amounts: dict[str, int]) -> None:
        key, day = self._keys.usage(tenant_id), utc_day()
        pipe = self._redis.pipeline(transaction=False)
        for name, value in amounts.items():
            if value:
                pipe.hincrby(key, name, value)
                pipe.hincrby(key, f"{name}:{day}", value)
        pipe.execute()

    def record_llm(self, tenant_id: str, *, calls: int, prompt_tokens: int, completion_tokens: int) -> None:
        self._add(
            tenant_id,
            {"llm_calls": calls, "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens},
        )

    def record_rate_limited(self, tenant_id: str) -> None:
        self._add(tenant_id, {"rate_limited": 1})

    def tokens_spent_today(self, tenant_id: str) -> int:
        day = utc_day()
        prompt, completion = self._redis.hmget(
            self._keys.usage(tenant_id), f"prompt_tokens:{day}", f"completion_tokens:{day}"
        )
        return int(prompt or 0) + int(completion or 0)

    def report(self, tenant_id: str, *, sessions: int) -> dict[str, Any]:
        day = utc_day()
        fields = [*COUNTERS, *(f"{name}:{day}" for name in COUNTERS)]
        values = self._redis.hmget(self._keys.usage(tenant_id), fields)
        numbers = dict(zip(fields, (int(v or 0) for v in values), strict=True))
        report: dict[str, Any] = {"tenant_id": tenant_id, "day": day, "sessions": sessions}
        for name in COUNTERS:
            report[name] = {"total": numbers[name], "today": numbers[f"{name}:{day}"]}
        return report

    def daily(self, tenant_ids: list[str], *, days: int, now: int | None = None) -> dict[str, list[DayUsage]]:
        """Each tenant's counters for the last ``days`` UTC days (oldest first), in one
        pipeline."""
        day_names = last_days(days, now=now)
        fields = [f"{name}:{day}" for day in day_names for name in COUNTERS]
        pipe = self._redis.pipeline(transaction=False)
        for tenant_id in tenant_ids:
            pipe.hmget(self._keys.usage(tenant_id), fields)
        result: dict[str, list[DayUsage]] = {}
        for tenant_id, values in zip(tenant_ids, pipe.execute(), strict=True):
            numbers = [int(v or 0) for v in values]
            width = len(COUNTERS)
            result[tenant_id] = [
                DayUsage(day, *numbers[i * width : (i + 1) * width]) for i, day in enumerate(day_names)
            ]
        return result
