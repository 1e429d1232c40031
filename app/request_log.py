"""Per request: its id (``X-Request-ID``, kept in the log context) and, when it is done,
one log line and the HTTP metrics — by route template, never the path."""

from __future__ import annotations

import logging
import os
import re
import time

from flask import Response, g, request

from app import metrics
from config.logging import log_context

log = logging.getLogger("recollect")

REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def assign_request_id() -> None:
    g.started = time.perf_counter()
    incoming = request.headers.get("X-Request-ID")
    # 32 random hex digits, as uuid4().hex but without building a UUID object.
    g.request_id = incoming if incoming and REQUEST_ID_RE.match(incoming) else os.urandom(16).hex()
    # A fresh context per request: gunicorn's threads serve many requests each.
    log_context.set({"request_id": g.request_id})


def finish_request(response: Response) -> Response:
    request_id = g.get("request_id")
    if request_id is None:  # failed before the first hook (e.g. routing)
        assign_request_id()
        request_id = g.request_id
    response.headers["X-Request-ID"] = request_id
    # The route template, never the path: session ids may be personal data.
    route = request.url_rule.rule if request.url_rule else "-"
    seconds = time.perf_counter() - g.get("started", time.perf_counter())
    metrics.REQUESTS.labels(route, request.method, str(response.status_code)).inc()
    metrics.REQUEST_SECONDS.labels(route, request.method).observe(seconds)
    if log.isEnabledFor(logging.INFO):
        principal = g.get("principal")
        fields = {
            "method": request.method,
            "route": route,
            "status": response.status_code,
            "ms": round(seconds * 1000, 1),
            "tenant_id": principal.tenant_id if principal else None,
            "key_id": principal.key_id if principal else None,
            "request_id": request_id,
        }
        log.info(
            "request method=%s route=%s status=%d ms=%.1f tenant=%s key=%s request_id=%s",
            *(fields[k] if fields[k] is not None else "-" for k in fields),
            extra=fields,
        )
    return response
