"""A rate-limit charge that rides in the store's own round trip.

flask-limiter counts a request in its ``before_request`` hook: one Redis round trip (one
script per limit) before the view makes its own. On the two hottest routes (append and read
memory) that round trip and its Python cost were the largest part of the gap to the floor
app (docs/benchmarks.md). There the web layer hands the store a ``RateCharge`` instead — the
same keys, limits and sliding-window-counter arithmetic as limits' own Redis storage — and
the store runs it in the request's single script or pipeline. The store learns nothing about
HTTP: it reports the window it saw and whether every limit admitted the request.

Only single-node Redis: the counters' keys do not share the session's hash slot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


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
    """What the charge found: whether the request was admitted, which limit to report
    (the one that refused, else the first) and that limit's sliding window, as limits'
    ``get_sliding_window`` returns it (counts, and seconds to expiry)."""

    admitted: bool
    index: int
    previous_count: int
    previous_ttl: float
    current_count: int
    current_ttl: float

    @classmethod
    def from_reply(cls, reply: Sequence[int]) -> RateWindow:
        admitted, index, previous_count, previous_ttl, current_count, current_ttl = reply
        return cls(
            bool(admitted),
            int(index),
            int(previous_count),
            int(previous_ttl) / 1000,
            int(current_count),
            int(current_ttl) / 1000,
        )

    @property
    def sliding_window(self) -> tuple[int, float, int, float]:
        return (self.previous_count, self.previous_ttl, self.current_count, self.current_ttl)


# limits' acquire_sliding_window.lua (limits 5.8), looped over several limits and returning
# the window it saw (after its own increment when it admitted). Included at the top of the
# scripts that charge; times are milliseconds inside, as in the original.
#   charge_limits(k, a, n): n limits, keys from KEYS[k] (previous, current per limit), numbers
#   from ARGV[a] (amount, expiry seconds, cost per limit).
#   Returns {admitted, index, previous_count, previous_ttl, current_count, current_ttl}.
CHARGE_LIMITS_LUA = """
local function charge_limits(k, a, n)
  local report = {1, 0, 0, 0, 0, 0}
  for i = 0, n - 1 do
    local previous_key, current_key = KEYS[k + 2 * i], KEYS[k + 2 * i + 1]
    local limit = tonumber(ARGV[a + 3 * i])
    local expiry = tonumber(ARGV[a + 3 * i + 1]) * 1000
    local amount = tonumber(ARGV[a + 3 * i + 2])
    local current_ttl = tonumber(redis.call('pttl', current_key))
    if current_ttl > 0 and current_ttl < expiry then
      -- The current window expired: shift it to the previous window.
      redis.call('rename', current_key, previous_key)
      redis.call('set', current_key, 0, 'PX', current_ttl + expiry)
    end
    local previous_count = tonumber(redis.call('get', previous_key)) or 0
    local previous_ttl = tonumber(redis.call('pttl', previous_key)) or 0
    local current_count = tonumber(redis.call('get', current_key)) or 0
    current_ttl = tonumber(redis.call('pttl', current_key)) or 0
    if previous_ttl <= 0 then previous_ttl = 0 end
    if current_ttl <= 0 then current_ttl = 0 end
    local admitted = 0
    local weighted_count = math.floor(previous_count * previous_ttl / expiry) + current_count
    if amount <= limit and (weighted_count + amount) <= limit then
      admitted = 1
      if redis.call('exists', current_key) == 1 then
        current_count = redis.call('incrby', current_key, amount)
      else
        redis.call('set', current_key, amount, 'PX', expiry * 2)
        current_count = amount
        current_ttl = expiry * 2
      end
    end
    if admitted == 0 then
      return {0, i + 1, previous_count, previous_ttl, current_count, current_ttl}
    end
    if i == 0 then
      report = {1, 1, previous_count, previous_ttl, current_count, current_ttl}
    end
  end
  return report
end
"""

# Standalone: KEYS = the charge's keys; ARGV = its numbers.
CHARGE_SCRIPT = CHARGE_LIMITS_LUA + "return charge_limits(1, 1, #KEYS / 2)\n"
