"""Authentication: one app-level hook that decides who a request acts as.

It runs before every view (and, registered before the rate limiter, before the limiter's
own hook, so limits can be keyed by tenant). Access by top-level blueprint: ``health`` is
public, ``admin`` takes the operator token, everything else a tenant key.
"""

from __future__ import annotations

import logging

from flask import Flask, current_app, g, request

from app import path_keys
from app.domain.errors import NotFound, RateLimited, Unauthenticated
from app.domain.tenancy import api_keys
from app.extensions import Resources
from config.logging import log_context

log = logging.getLogger("recollect")

# The console signs operators in itself (a session cookie, app/console/signin.py).
PUBLIC_BLUEPRINTS = frozenset({"health", "docs", "metrics", "console"})
ADMIN_BLUEPRINTS = frozenset({"admin"})


def presented_key() -> str | None:
    """The key a request carries: ``Authorization: Bearer``, MotorHead's hosted header, or
    the path (``/k/<api_key>``, api.md §9).

    Two different keys in two places are refused rather than guessed between.
    """
    bearer = None
    header = request.headers.get("Authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthenticated("malformed Authorization header")
        bearer = value.strip()
    metal = request.headers.get("x-metal-api-key")
    metal = metal.strip() if metal else None
    in_path = request.environ.get(path_keys.ENVIRON_KEY)
    presented = {key for key in (bearer, metal, in_path) if key}
    if len(presented) > 1:
        raise Unauthenticated("conflicting credentials")
    return presented.pop() if presented else None


def _authenticate_admin(resources: Resources) -> None:
    token = resources.settings.admin_token
    if token is None:
        # Without an operator token the admin API does not exist.
        raise NotFound("not found")
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not api_keys.token_matches(value.strip(), token.get_secret_value()):
        raise Unauthenticated("invalid or missing admin token")
    g.admin = True


def authenticate() -> None:
    if request.endpoint is None:
        return  # unknown route: let routing answer 404
    top = request.blueprints[-1] if request.blueprints else None
    if request.environ.get(path_keys.ENVIRON_KEY) is not None and (
        top in PUBLIC_BLUEPRINTS or top in ADMIN_BLUEPRINTS
    ):
        # A tenant key in the path opens tenant routes only; anything else is no route.
        raise NotFound("not found")
    if top in PUBLIC_BLUEPRINTS:
        return
    try:
        _authenticate()
    except Unauthenticated:
        # Only failures are limited: a valid credential has already passed above, whatever
        # its address or key id has been through.
        guard = current_app.extensions.get("recollect_auth_guard")
        wait = guard.failed(request.remote_addr, _presented_key_id()) if guard is not None else None
        if wait is not None:
            raise RateLimited("too many failed authentications", retry_after=wait) from None
        raise


def _presented_key_id() -> str | None:
    """The key id of a well-formed tenant key the request carries, if any."""
    if request.blueprints and request.blueprints[-1] in ADMIN_BLUEPRINTS:
        return None
    try:
        key = presented_key()
    except Unauthenticated:
        return None
    parsed = api_keys.parse_key(key) if key else None
    return parsed[0] if parsed else None


def _authenticate() -> None:
    top = request.blueprints[-1] if request.blueprints else None
    resources: Resources = current_app.extensions["recollect"]
    if top in ADMIN_BLUEPRINTS:
        _authenticate_admin(resources)
        return
    key = presented_key()
    authenticator = resources.authenticator
    if key is None:
        open_tenant = resources.settings.open_tenant
        if open_tenant is None:
            raise Unauthenticated("missing API key")
        principal = authenticator.principal_for(open_tenant)
        if principal is None:
            resources.registry.ensure_tenant(open_tenant)
            principal = authenticator.principal_for(open_tenant)
    else:
        principal = authenticator.authenticate(key)
    if principal is None:
        raise Unauthenticated("invalid API key")
    g.principal = principal
    log_context.set(log_context.get() | {"tenant_id": principal.tenant_id, "key_id": principal.key_id or "-"})


def init_app(app: Flask) -> None:
    app.before_request(authenticate)
