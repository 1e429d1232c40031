"""A Flask app wired as ``create_app`` wires the limiter: ``TenantLimiter``, the
rate-limit header hook, and ``app.response_headers`` running last."""

from __future__ import annotations

from flask import Flask

from app import response_headers
from app.rate_limits.headers import rate_limit_headers
from app.rate_limits.limiter import TenantLimiter


def limited_app(limit: str) -> tuple[Flask, TenantLimiter]:
    app = Flask(__name__)
    app.after_request(response_headers.finish)
    limiter = TenantLimiter(
        key_func=lambda: "tenant", application_limits=[limit], storage_uri="memory://", headers_enabled=False
    )
    limiter.init_app(app)
    app.after_request(rate_limit_headers(limiter))
    return app, limiter
