"""The one error handler: every failure becomes ``{"error": {"code", "message"}}``."""

from __future__ import annotations

import logging
import traceback

from flask import Flask, Response, g
from werkzeug.exceptions import HTTPException

from app import metrics
from app.domain import errors as domain
from app.http import UnsupportedMediaType, drain_refused_body, json_response

log = logging.getLogger("recollect")

STATUS = {
    domain.InvalidRequest: 400,
    domain.Unauthenticated: 401,
    domain.Forbidden: 403,
    domain.NotFound: 404,
    domain.Conflict: 409,
    domain.TooLarge: 413,
    UnsupportedMediaType: 415,
    domain.InvalidField: 422,
    domain.RateLimited: 429,
    domain.StoreUnavailable: 503,
    domain.EmbeddingsUnavailable: 503,
}

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_field",
    429: "rate_limited",
    503: "unavailable",
}


def error_response(status: int, code: str, message: str) -> Response:
    response = json_response({"error": {"code": code, "message": message}}, status)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="recollect"'
    if status == 503:
        response.headers["Retry-After"] = "1"
    return response


def status_for(exc: domain.RecollectError) -> int:
    """The HTTP status of a domain error (also the console's, so its pages agree with the API)."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def domain_error_response(exc: domain.RecollectError) -> Response:
    """The response for a domain error (the error handler's, also used outside a view)."""
    response = error_response(status_for(exc), exc.code, exc.message)
    if isinstance(exc, (domain.RateLimited, domain.EmbeddingsUnavailable)):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(domain.RecollectError, domain_error_response)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        status = exc.code or 500
        code = _HTTP_CODES.get(status, "http_error")
        message = exc.description or exc.name
        if status == 429:
            message = "rate limit exceeded"
        response = error_response(status, code, message)
        if status == 413 and not drain_refused_body():
            response.headers["Connection"] = "close"
        for header in ("Retry-After", "Allow"):
            if exc.response is not None and header in exc.response.headers:
                response.headers[header] = exc.response.headers[header]
        if status == 405 and getattr(exc, "valid_methods", None):
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(domain.StoreUnavailable)
    def _store_unavailable(exc: domain.StoreUnavailable) -> Response:
        metrics.REDIS_ERRORS.inc()
        log.warning("redis unavailable: %s request_id=%s", exc.cause, g.get("request_id"))
        return domain_error_response(exc)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        # The traceback's frames, never the exception's text: it may quote request data.
        frames = "".join(traceback.format_tb(exc.__traceback__))
        log.error("unhandled %s request_id=%s\n%s", type(exc).__name__, g.get("request_id"), frames)
        return error_response(500, "internal_error", "internal error")
