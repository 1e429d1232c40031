"""The store's cached timestamp formatting says exactly what datetime would."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from app.domain.clock import utc_day, utc_iso


def reference_iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_timestamps_match_datetime_across_second_and_day_boundaries():
    rng = random.Random(7)
    edges = [0, 1, 999, 1000, 59_999, 86_399_999, 86_400_000, 951_782_400_000, 4_102_444_799_999]
    samples = edges + sorted(rng.randrange(0, 4_102_444_800_000) for _ in range(2000))
    for ms in samples + samples[::-1]:  # forwards and backwards through the caches
        assert utc_iso(ms) == reference_iso(ms)
        assert utc_day(ms) == datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


def test_utc_day_defaults_to_now():
    assert utc_day() == datetime.now(UTC).strftime("%Y-%m-%d")
