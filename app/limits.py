"""Per-tenant rate limits (flask-limiter on Redis) and brute-force protection.

* The limiter's key is the tenant id and its limit string the tenant's policy
  (``rate_limit``), so one tenant exhausting its limit never touches another's. Its hook
  runs after authentication: ``auth.init_app`` registers its ``before_request`` first.
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

import time

from flask import Flask, Response, current_app, g, request
from flask_limiter import Limiter, RequestLimit
from limits import parse

from app import metrics
from app.domain.keyspace import Keyspace
from app.extensions import cluster_seed_url, fast_retry, make_pool
from app.limiter_storage import OneTripRedisStorage
from app.redis_breaker import RedisBreaker
from config import Settings

AUTH_FAILURE_LIMIT = "20/minute"
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


def init_app(app: Flask, settings: Settings, exempt: list) -> Limiter:
    limiter = build_limiter(settings, app.extensions["recollect"].breaker)
    limiter.init_app(app)
    for blueprint in exempt:
        limiter.exempt(blueprint)
    app.extensions["recollect_limiter"] = limiter
    app.extensions["recollect_auth_guard"] = AuthFailureGuard(limiter)
    return limiter
