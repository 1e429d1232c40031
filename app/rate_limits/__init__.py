"""Rate limits: per-tenant application limits (flask-limiter, ``limiter``), charged inside
the store's round trip on the hottest views (``in_store``), and failed authentications
limited per address (``auth_failures``)."""

from __future__ import annotations

from flask import Blueprint, Flask

from app.domain.keyspace import Keyspace
from app.rate_limits.auth_failures import AuthFailureGuard
from app.rate_limits.headers import rate_limit_headers
from app.rate_limits.in_store import EXTENSION, InStoreCharges, charged_in_store
from app.rate_limits.limiter import build_limiter
from app.rate_limits.storage import OneTripRedisStorage
from config import Settings

__all__ = ["charged_in_store", "init_app"]


def init_app(app: Flask, settings: Settings, exempt: list[Blueprint]) -> None:
    limiter = build_limiter(settings, app.extensions["recollect"].breaker)
    limiter.init_app(app)
    app.after_request(rate_limit_headers(limiter))
    for blueprint in exempt:
        limiter.exempt(blueprint)
    storage = limiter.storage
    if isinstance(storage, OneTripRedisStorage):
        charges = InStoreCharges(limiter, storage, Keyspace(settings.key_prefix).rate_limit_prefix)
        limiter.handed_over = charges.hands_over
        app.extensions[EXTENSION] = charges
    app.extensions["recollect_limiter"] = limiter
    app.extensions["recollect_auth_guard"] = AuthFailureGuard(limiter)
