"""The tenant's limits charged inside the store's own round trip, on the hottest views.

flask-limiter counts a request in its ``before_request`` hook: one Redis round trip before
the view makes its own. A view decorated with ``@charged_in_store`` is handed over instead:
flask-limiter's hook skips it (``TenantLimiter``), and the decorator offers the same charge — the
keys, limits and arithmetic limits' own storage would use — to the store
(``app.domain.ratelimit.riding``), which runs it in the request's one script or pipeline.
The outcome is flask-limiter's: the same counters and decision, its ``X-RateLimit-*``
headers (``app.rate_limits.headers`` reads the window the store saw) and its 429 and breach
hook. A request that fails before reaching the store (a bad body, a bad id) is charged on
its own round trip, so every request counts once.

Single Redis node only: on a cluster the counters live in other slots than the session,
and flask-limiter's hook charges these views like any other.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.exceptions
from cachetools import LRUCache
from flask import current_app, g, request
from flask_limiter import Limiter, RequestLimit
from limits import RateLimitItem, parse_many

from app.domain.errors import RateLimited
from app.domain.ratelimit.charge import RateCharge, RateWindow
from app.domain.ratelimit.riding import charge_in_store
from app.domain.tenancy.authentication import Principal
from app.rate_limits.limiter import on_breach, tenant_key
from app.rate_limits.storage import OneTripRedisStorage

log = logging.getLogger("recollect")

# flask-limiter's scope for application limits (``ApplicationLimit.scope``, shared).
APPLICATION_SCOPE = "global"
EXTENSION = "recollect_in_store_charges"

F = TypeVar("F", bound=Callable[..., Any])


def charged_in_store(view: F) -> F:
    """Charge the tenant's rate limits inside the store call this view makes."""

    @functools.wraps(view)
    def charged(*args: Any, **kwargs: Any) -> Any:
        charges: InStoreCharges | None = current_app.extensions.get(EXTENSION)
        principal = g.get("principal")
        if charges is None or principal is None:
            return view(*args, **kwargs)
        return charges.call(principal, view, args, kwargs)

    charged.charged_in_store = True  # type: ignore[attr-defined]
    return charged  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class PendingCharge:
    items: tuple[RateLimitItem, ...]
    identifiers: tuple[str, ...]
    keys: tuple[str, ...]  # limits' key of each item
    charge: RateCharge


@functools.lru_cache(maxsize=1024)
def _limit_items(limit: str) -> tuple[RateLimitItem, ...]:
    # flask-limiter's evaluation order: sorted by granularity, parse order within one.
    return tuple(sorted(parse_many(limit)))


class InStoreCharges:
    def __init__(self, limiter: Limiter, storage: OneTripRedisStorage, key_prefix: str) -> None:
        self._limiter = limiter
        self._storage = storage
        self._key_prefix = key_prefix
        # The same for every request of a tenant until its limit changes: built once.
        self._charges: LRUCache[tuple[str, str], PendingCharge] = LRUCache(maxsize=10_000)

    def hands_over(self) -> bool:
        """True for a decorated view of an authenticated tenant, which flask-limiter's own
        hook then leaves alone (``TenantLimiter.handed_over``)."""
        view = current_app.view_functions.get(request.endpoint or "")
        return getattr(view, "charged_in_store", False) and g.get("principal") is not None

    def call(self, principal: Principal, view: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        pending = self._pending(tenant_key(), principal.policy.rate_limit)
        with charge_in_store(pending.charge) as ride:
            try:
                response = view(*args, **kwargs)
            except Exception:
                self._settle(pending, ride.window if ride.window is not None else self._charge_alone(pending))
                raise
        self._settle(pending, ride.window if ride.window is not None else self._charge_alone(pending))
        return response

    def _pending(self, key: str, limit: str) -> PendingCharge:
        cached = self._charges.get((key, limit))
        if cached is None:
            identifiers = (self._key_prefix, key, APPLICATION_SCOPE)
            items = _limit_items(limit)
            keys = tuple(item.key_for(*identifiers) for item in items)
            hits = tuple(
                self._storage.limit_hit(k, item.amount, item.get_expiry())
                for k, item in zip(keys, items, strict=True)
            )
            cached = PendingCharge(items, identifiers, keys, RateCharge(hits))
            self._charges[(key, limit)] = cached
        return cached

    def _charge_alone(self, pending: PendingCharge) -> RateWindow | None:
        try:
            return self._storage.charge(pending.charge)
        except redis.exceptions.RedisError:
            return None  # as flask-limiter with swallow_errors: the response stands

    def _settle(self, pending: PendingCharge, window: RateWindow | None) -> None:
        """Hand the window to flask-limiter's request state; raise a 429 if refused."""
        if window is None:
            return
        item = pending.items[window.index - 1]
        self._storage.remember(pending.keys[window.index - 1], item.get_expiry(), window)
        breached = not window.admitted
        request_limit = RequestLimit(self._limiter, item, list(pending.identifiers), breached, True)
        # What flask-limiter's own hook leaves for the header hook (current_limit).
        self._limiter.context.view_rate_limit = request_limit
        self._limiter.context.view_rate_limits = [request_limit]
        if breached:
            log.info("ratelimit %s exceeded for %s", item, pending.identifiers[1])
            on_breach(request_limit)
            # Retry-After: the header hook raises it to the window's reset.
            raise RateLimited("rate limit exceeded", retry_after=1)
