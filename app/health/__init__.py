"""Liveness and readiness; public, never rate limited."""

from __future__ import annotations

import time

from flask import Blueprint, Response, current_app

from app.domain.errors import StoreUnavailable
from app.errors import error_response
from app.http import json_response
from app.openapi import documented
from app.schemas import HealthOut, NowOut

bp = Blueprint("health", __name__)


@bp.get("/")
@documented("MotorHead's health check: the server clock", tag="operations", ok=(200, NowOut), auth="none")
def now() -> Response:
    """MotorHead's health check: the server's clock in unix milliseconds."""
    return json_response({"now": int(time.time() * 1000)})


@bp.get("/healthz")
@documented("Liveness: the process is up", tag="operations", ok=(200, HealthOut), auth="none")
def healthz() -> Response:
    return json_response({"status": "ok"})


@bp.get("/readyz")
@documented("Readiness: Redis answers", tag="operations", ok=(200, HealthOut), errors=(503,), auth="none")
def readyz() -> Response:
    try:
        current_app.extensions["recollect"].store.ping()
    except StoreUnavailable:
        return error_response(503, "store_unavailable", "storage is unreachable")
    return json_response({"status": "ready"})


metrics_bp = Blueprint("metrics", __name__)


@metrics_bp.get("/metrics")
@documented(
    "Prometheus metrics (only with RECOLLECT_METRICS=1; keep it on the internal network)",
    tag="operations",
    ok=(200, None),
    auth="none",
    content_type="text/plain",
)
def metrics() -> Response:
    from app import metrics as metrics_module

    resources = current_app.extensions["recollect"]
    body, content_type = metrics_module.render(resources.fold_due.stats)
    return Response(body, content_type=content_type)
