"""UTC time in the forms the API and the usage counters use.

Every append formats a day and a second; strftime is a measurable part of its CPU, so the
last of each is reused (a tuple is replaced whole, so threads never see half of one).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

_last_day: tuple[int, str] = (-1, "")
_last_second: tuple[int, str] = (-1, "")


def now_ms() -> int:
    return int(time.time() * 1000)


def utc_day(ms: int | None = None) -> str:
    """The UTC day (``YYYY-MM-DD``) that usage counters and daily budgets are kept by."""
    global _last_day
    if ms is None:
        ms = now_ms()
    day = ms // 86_400_000
    cached = _last_day
    if cached[0] != day:
        cached = _last_day = (day, time.strftime("%Y-%m-%d", time.gmtime(day * 86_400)))
    return cached[1]


def utc_iso(ms: int) -> str:
    """``2026-11-24T16:19:56.123Z``: the API's timestamp form."""
    global _last_second
    second, millis = divmod(ms, 1000)
    cached = _last_second
    if cached[0] != second:
        cached = _last_second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{cached[1]}.{millis:03d}Z"


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
