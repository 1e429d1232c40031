"""Per-tenant rate limits (flask-limiter on Redis) and brute-force protection.

* The limiter's key is the tenant id and its limit string the tenant's policy
  (``rate_limit``), so one tenant exhausting its limit never touches another's. Its hook
  runs after authentication: ``auth.init_app`` registers its ``before_request`` first.
* On the memory append and read routes (the hot path) the same limits are charged inside
  the store's own round trip instead of the hook's (``InlineRateLimits``): same counters,
  same decision, flask-limiter's headers and 429 — one Redis round trip per request instead
  of two, and most of the hook's per-request Python skipped (docs/benchmarks.md).
* Strategy ``sliding-window-counter``: two counters per key, no 2x bursts at window edges
  (fixed window) and no per-request timestamps (moving window).
* Counters live in Redis under their own prefix, so limits hold across every gunicorn
  worker and host. When Redis is unreachable the limiter abstains (``swallow_errors``) and
  the request gets the store's 503 with ``Retry-After``: every tenant route needs Redis
  anyway. Letting the limiter raise instead turned the outage into 500s — its after-request
  header hook fails while Flask is already rendering the 503 (found by the chaos run).
  The limiter's pool shares the app's circuit breaker (``app/redis_breaker.py``), so a
  hung Redis costs the request one timeout in all, not one in the limiter and one more
  in the store.
  There is deliberately no in-memory fallback: that would quietly multiply every limit by
  the number of processes exactly when Redis struggles.
* Failed authentications count per client address (``AUTH_FAILURE_LIMIT``); past it the
  address gets 429 before any key is even looked up.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass

import redis.exceptions
from flask import Flask, Response, current_app, g, request
from flask_limiter import Limiter, RequestLimit
from limits import RateLimitItem, parse, parse_many

from app import metrics
from app.domain.errors import RateLimited
from app.domain.keyspace import Keyspace
from app.domain.ratelimit import RateCharge, RateWindow
from app.errors import domain_error_response
from app.extensions import cluster_seed_url, fast_retry, make_pool
from app.limiter_storage import OneTripRedisStorage
from app.redis_breaker import RedisBreaker
from config import Settings

log = logging.getLogger("recollect")

AUTH_FAILURE_LIMIT = "20/minute"
# Views whose store call charges the tenant's limits in its own round trip (under every
# prefix the memory blueprint is mounted at).
INLINE_VIEWS = frozenset({"append_memory", "read_memory"})
# flask-limiter's scope for application limits (``ApplicationLimit.scope``, shared).
APPLICATION_SCOPE = "global"
_auth_failure_limit = parse(AUTH_FAILURE_LIMIT)


def _tenant_key() -> str:
    principal = g.get("principal")
    return f"t:{principal.tenant_id}" if principal is not None else f"ip:{request.remote_addr}"


def _tenant_limit() -> str:
    principal = g.get("principal")
    if principal is not None:
        return principal.policy.rate_limit
    return current_app.extensions["recollect"].settings.rate_limit


def _on_breach(limit: RequestLimit) -> Response | None:
    principal = g.get("principal")
    if principal is not None:
        current_app.extensions["recollect"].usage.record_rate_limited(principal.tenant_id)
        metrics.RATE_LIMITED.labels(metrics.tenant_label(principal.tenant_id)).inc()
    return None  # flask-limiter raises 429; our error handler renders it


def _storage(settings: Settings, breaker: RedisBreaker) -> tuple[str, dict]:
    if settings.redis_url is None:
        # The embedded mode is one process by definition.
        return "memory://", {}
    if cluster_seed_url(settings.redis_url) is not None:
        return settings.redis_url, {
            "socket_timeout": settings.redis_socket_timeout,
            "socket_connect_timeout": settings.redis_connect_timeout,
            "retry": fast_retry(),
        }
    # The store's timeouts, retry policy and circuit breaker: redis-py's default retry backs
    # off for seconds, and without the shared breaker a hung Redis cost the limiter's call
    # a full timeout before the store's call spent another (both found by the chaos run).
    # Count and headers in one round trip (unix sockets keep limits' own storage).
    uri = OneTripRedisStorage.uri_for(settings.redis_url) or settings.redis_url
    return uri, {"connection_pool": make_pool(settings, breaker)}


def build_limiter(settings: Settings, breaker: RedisBreaker) -> Limiter:
    uri, options = _storage(settings, breaker)
    return Limiter(
        key_func=_tenant_key,
        # Application limits: one budget per tenant across every route (default limits
        # would count each route separately).
        application_limits=[_tenant_limit],
        strategy="sliding-window-counter",
        headers_enabled=True,
        storage_uri=uri,
        storage_options=options,
        key_prefix=Keyspace(settings.key_prefix).rate_limit_prefix,
        swallow_errors=True,
        on_breach=_on_breach,
    )


class AuthFailureGuard:
    """Counts failed authentications per client address in Redis (shared by all workers)
    and, once an address is over ``AUTH_FAILURE_LIMIT``, blocks it locally until the window
    resets — so a blocked address costs no Redis round trip, and a good request costs none
    either: only failures are counted.
    """

    def __init__(self, limiter: Limiter) -> None:
        self._limiter = limiter
        self._blocked: dict[str, float] = {}

    def retry_after(self, address: str | None) -> int | None:
        until = self._blocked.get(address or "-")
        if until is None:
            return None
        remaining = until - time.time()
        if remaining <= 0:
            self._blocked.pop(address or "-", None)
            return None
        return max(1, int(remaining) + 1)

    def failed(self, address: str | None) -> int | None:
        """Count one failure; the seconds to wait if the address is now over the limit."""
        key = address or "-"
        strategy = self._limiter.limiter
        if strategy.hit(_auth_failure_limit, "authfail", key):
            return None
        reset, _ = strategy.get_window_stats(_auth_failure_limit, "authfail", key)
        self._blocked[key] = reset
        if len(self._blocked) > 100_000:
            self._blocked.clear()
        return max(1, int(reset - time.time()) + 1)


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


class InlineRateLimits:
    """The tenant's application limits, charged inside the store's round trip on the memory
    append and read routes (``app/domain/ratelimit.py`` says why), with flask-limiter's
    outcome: same counters, same decision, its headers, its 429 and ``on_breach``.

    * flask-limiter's request filter (``claims``) hands such a request over: the hook then
      skips it, and the charge waits in ``g`` for the view to pass to the store.
    * ``settle`` turns the window the store reports into flask-limiter's request state: its
      ``after_request`` hook writes the ``X-RateLimit-*`` headers and ``Retry-After`` from it
      (the window read answered by ``OneTripRedisStorage.remember``), on a 200 and on the
      429 that ``settle`` raises.
    * A request that fails before reaching the store (a bad body, a bad id) is still charged,
      in ``after_request``, on its own round trip: every request counts once, as before.
    """

    def __init__(self, limiter: Limiter, storage: OneTripRedisStorage, key_prefix: str) -> None:
        self._limiter = limiter
        self._storage = storage
        self._key_prefix = key_prefix
        self._charges: dict[tuple[str, str], PendingCharge] = {}

    def claims(self) -> bool:
        endpoint = request.endpoint
        if endpoint is None or endpoint.rsplit(".", 1)[-1] not in INLINE_VIEWS:
            return False
        principal = g.get("principal")
        if principal is None:
            return False
        g.rate_charge = self._pending(_tenant_key(), _tenant_limit())
        return True

    def _pending(self, tenant_key: str, limit: str) -> PendingCharge:
        # The same for every request of a tenant until its limit changes: built once.
        cached = self._charges.get((tenant_key, limit))
        if cached is None:
            identifiers = (self._key_prefix, tenant_key, APPLICATION_SCOPE)
            items = _limit_items(limit)
            keys = tuple(item.key_for(*identifiers) for item in items)
            hits = tuple(
                self._storage.limit_hit(key, item.amount, item.get_expiry())
                for key, item in zip(keys, items, strict=True)
            )
            cached = PendingCharge(items, identifiers, keys, RateCharge(hits))
            if len(self._charges) >= 10_000:
                self._charges.clear()
            self._charges[(tenant_key, limit)] = cached
        return cached

    def settle(self, window: RateWindow | None) -> None:
        """Record what the store's charge found; raise a 429 if refused."""
        pending = g.pop("rate_charge", None)
        if pending is None or window is None:
            return
        item = pending.items[window.index - 1]
        self._storage.remember(pending.keys[window.index - 1], item.get_expiry(), window)
        breached = not window.admitted
        request_limit = RequestLimit(self._limiter, item, list(pending.identifiers), breached, True)
        # What flask-limiter's own hook leaves for its after_request header hook.
        self._limiter.context.view_rate_limit = request_limit
        self._limiter.context.view_rate_limits = [request_limit]
        if breached:
            log.info("ratelimit %s exceeded for %s", item, pending.identifiers[1])
            _on_breach(request_limit)
            # Retry-After: flask-limiter's header hook raises it to the window's reset.
            raise RateLimited("rate limit exceeded", retry_after=1)

    def charge_unsettled(self, response: Response) -> Response:
        """``after_request``: charge a claimed request whose view never reached the store."""
        pending = g.get("rate_charge")
        if pending is None:
            return response
        charge = pending.charge
        try:
            window = RateWindow.from_reply(self._storage.lua_charge(charge.keys, charge.args))
        except redis.exceptions.RedisError:
            # As flask-limiter with swallow_errors: the response stands (limits.py's docstring).
            g.pop("rate_charge", None)
            return response
        try:
            self.settle(window)
        except RateLimited as refused:
            return domain_error_response(refused)
        return response


def inline_charge() -> RateCharge | None:
    """The rate charge a memory view passes to the store (None: flask-limiter charged it)."""
    pending = g.get("rate_charge")
    return pending.charge if pending is not None else None


def settle_inline(window: RateWindow | None) -> None:
    """Settle the charge the store ran; raises a 429 (RateLimited) when it refused."""
    inline = current_app.extensions.get("recollect_inline_limits")
    if inline is not None:
        inline.settle(window)


def init_app(app: Flask, settings: Settings, exempt: list) -> Limiter:
    limiter = build_limiter(settings, app.extensions["recollect"].breaker)
    limiter.init_app(app)
    for blueprint in exempt:
        limiter.exempt(blueprint)
    storage = limiter.storage
    if isinstance(storage, OneTripRedisStorage):
        inline = InlineRateLimits(limiter, storage, Keyspace(settings.key_prefix).rate_limit_prefix)
        limiter.request_filter(inline.claims)
        # Registered after flask-limiter's header hook, so it runs before it.
        app.after_request(inline.charge_unsettled)
        app.extensions["recollect_inline_limits"] = inline
    app.extensions["recollect_limiter"] = limiter
    app.extensions["recollect_auth_guard"] = AuthFailureGuard(limiter)
    return limiter
