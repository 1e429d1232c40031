"""A request's charge against its tenant's rate limits, and what the charge found.

The keys and the sliding-window-counter arithmetic are those of the ``limits`` package's
Redis storage, so a charge run here and one run by flask-limiter count in the same
counters (``charge_limits.lua``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.domain.redis_access import Script

# charge_limits(k, a, n) as a library for scripts that charge inside their own work.
CHARGE_LIBRARY = (__package__, "charge_limits.lua")


@dataclass(frozen=True, slots=True)
class LimitHit:
    """One limit to charge: limits' two window keys (already prefixed) and its numbers."""

    previous_key: str
    current_key: str
    amount: int  # requests allowed per window
    expiry: int  # window length in seconds
    cost: int = 1


@dataclass(frozen=True, slots=True)
class RateCharge:
    """The limits one request is charged against, in the order they are evaluated.

    As flask-limiter does, evaluation stops at the first limit that refuses; the limits
    before it have been charged.
    """

    hits: tuple[LimitHit, ...]

    @property
    def keys(self) -> list[str]:
        return [key for hit in self.hits for key in (hit.previous_key, hit.current_key)]

    @property
    def args(self) -> list[int]:
        return [value for hit in self.hits for value in (hit.amount, hit.expiry, hit.cost)]


@dataclass(frozen=True, slots=True)
class RateWindow:
    """Whether the request was admitted, which limit to report (1-based: the one that
    refused, else the first) and that limit's sliding window as limits'
    ``get_sliding_window`` returns it (counts, and seconds to expiry)."""

    admitted: bool
    index: int
    previous_count: int
    previous_ttl: float
    current_count: int
    current_ttl: float

    @classmethod
    def from_reply(cls, reply: Sequence[int]) -> RateWindow:
        admitted, index, previous_count, previous_ttl_ms, current_count, current_ttl_ms = reply
        return cls(
            bool(admitted),
            int(index),
            int(previous_count),
            int(previous_ttl_ms) / 1000,
            int(current_count),
            int(current_ttl_ms) / 1000,
        )

    @property
    def sliding_window(self) -> tuple[int, float, int, float]:
        return (self.previous_count, self.previous_ttl, self.current_count, self.current_ttl)


class ChargeScript:
    """``charge.lua``: a charge on its own round trip, or queued in a store's pipeline."""

    def __init__(self) -> None:
        self._script = Script(__package__, "charge.lua", libraries=[CHARGE_LIBRARY])

    def run(self, client: Any, charge: RateCharge) -> RateWindow:
        return RateWindow.from_reply(self._script.run(client, charge.keys, charge.args))

    def queue(self, pipe: Any, charge: RateCharge) -> None:
        self._script.queue(pipe, charge.keys, charge.args)

    def settle(self, reply: Any, client: Any, charge: RateCharge) -> RateWindow:
        return RateWindow.from_reply(self._script.settle(reply, client, charge.keys, charge.args))
