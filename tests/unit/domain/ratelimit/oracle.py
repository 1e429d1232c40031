"""Helpers shared by the rate charge tests: a settable clock, and the ``limits`` package's
own view of a limit (its keys, and its strategy's arithmetic over a given window)."""

from __future__ import annotations

from limits import RateLimitItem
from limits.storage import RedisStorage
from limits.strategies import SlidingWindowCounterRateLimiter
from limits.util import WindowStats

from app.domain.ratelimit.charge import LimitHit, RateWindow

START = 1_700_000_000.0


class Clock:
    """Wall-clock seconds that move only when a test says so."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def limit_hit(storage: RedisStorage, item: RateLimitItem, identifier: str, *, cost: int = 1) -> LimitHit:
    """The hit limits' storage would acquire for ``item`` and ``identifier``: its two window
    keys, named as flask-limiter's storage names them, and the item's numbers."""
    key = item.key_for(identifier)
    return LimitHit(
        storage.prefixed_key(storage._previous_window_key(key)),
        storage.prefixed_key(storage._current_window_key(key)),
        item.amount,
        item.get_expiry(),
        cost,
    )


class _SeenWindow(RedisStorage):
    """A storage whose every sliding-window read answers with one given window."""

    def __init__(self, reference: RedisStorage, window: RateWindow) -> None:
        super().__init__("redis://", connection_pool=reference.get_connection().connection_pool)
        self._window = window

    def get_sliding_window(self, key: str, expiry: int) -> tuple[int, float, int, float]:
        return self._window.sliding_window


def stats_from(reference: RedisStorage, item: RateLimitItem, window: RateWindow) -> WindowStats:
    """limits' (reset, remaining) for ``item`` computed from ``window``, as flask-limiter's
    header hook computes them from the window a charge reported."""
    return SlidingWindowCounterRateLimiter(_SeenWindow(reference, window)).get_window_stats(item, "any")
