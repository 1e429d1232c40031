"""Recollect: a multi-tenant, MotorHead-compatible chat memory server."""

from __future__ import annotations

import logging

from flask import Blueprint, Flask, Response, current_app

from config import Settings, load_settings
from config.logging import configure as configure_logging

log = logging.getLogger("recollect")

# MotorHead's routes are also served under the prefixes its clients use: n8n appends
# "/motorhead" to its host, and the hosted API lived at "/v1/motorhead" (bodies there are
# wrapped as {"data": ...}).
COMPAT_PREFIXES = {"motorhead": "/motorhead", "motorhead_v1": "/v1/motorhead"}


def create_app(settings: Settings | None = None) -> Flask:
    """Wire the app; build no socket and no thread (those come per process, after fork)."""
    from app import (
        account,
        admin,
        auth,
        cli,
        console,
        context,
        docs,
        health,
        memory,
        path_keys,
        proxy,
        rate_limits,
        request_log,
        response_headers,
        search,
        sessions,
        transfer,
    )
    from app.errors import register_error_handlers
    from app.extensions import Resources

    settings = settings or load_settings()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False
    # Session ids may contain '/' (even '//'): match them whole, never merge or redirect.
    app.url_map.converters["sid"] = memory.SessionIdConverter
    app.url_map.merge_slashes = False
    app.extensions["recollect"] = Resources(settings)
    _configure_logging(settings)

    app.before_request(request_log.assign_request_id)
    app.before_request(_start_background_work)
    # Registered before the limiter's hooks, so it runs after them: the final word on headers.
    app.after_request(response_headers.finish)
    # Authentication first: the limiter's own before_request hook, registered next, keys
    # its counters by the tenant that authentication found.
    auth.init_app(app)
    if settings.rate_limits_enabled:
        exempt = [health.bp, health.metrics_bp, admin.bp, docs.bp, console.bp]
        rate_limits.init_app(app, settings, exempt=exempt)
    # Registered last, so it runs first: the request line and metrics see the final status.
    app.after_request(request_log.finish_request)
    register_error_handlers(app)

    app.register_blueprint(health.bp)
    app.register_blueprint(docs.bp)
    if settings.metrics:
        app.register_blueprint(health.metrics_bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(console.bp)
    tenant_blueprints = (memory.bp, search.bp, context.bp, sessions.bp, account.bp, transfer.bp)
    for bp in tenant_blueprints:
        app.register_blueprint(bp)
    for name, prefix in COMPAT_PREFIXES.items():
        parent = Blueprint(name, __name__, url_prefix=prefix)
        for bp in tenant_blueprints:
            parent.register_blueprint(bp)
        if name == "motorhead_v1":
            parent.after_request(_wrap_in_data)
        app.register_blueprint(parent)
    cli.init_app(app)

    if settings.redis_url is None:
        log.warning(
            "REDIS_URL is not set: using the embedded in-process store (one process, "
            "nothing persisted). Set REDIS_URL for anything but a trial."
        )
    if settings.open_tenant:
        log.warning(
            "RECOLLECT_OPEN_TENANT=%s: requests without credentials act as that tenant "
            "(MotorHead drop-in mode)",
            settings.open_tenant,
        )
    path_keys.wrap(app, settings.path_keys)
    proxy.wrap(app, settings.proxy_count)
    return app


def _configure_logging(settings: Settings) -> None:
    # Under gunicorn, logconfig_dict already configured everything (same formatter).
    if not logging.getLogger("recollect").handlers:
        configure_logging(settings.log_level, settings.log_format)
    logging.getLogger("recollect").setLevel(settings.log_level)


def _start_background_work() -> None:
    """Start this process's fold and index pools on its first request (after any fork);
    gunicorn's ``post_worker_init`` hook starts it earlier in production."""
    current_app.extensions["recollect"].start_background_work()


def _wrap_in_data(response: Response) -> Response:
    if response.mimetype == "application/json" and response.status_code < 400:
        response.set_data(b'{"data":' + response.get_data() + b"}")
    return response
