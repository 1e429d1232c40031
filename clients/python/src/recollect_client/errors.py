"""Exceptions: one class per kind of failure, each carrying what the server said.

Every error response of the server is ``{"error": {"code", "message"}}`` with an
``X-Request-ID`` header (api.md §4); :class:`APIStatusError` keeps all of it, so a caller can
switch on the stable ``code`` and quote the request id to an operator.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


class RecollectError(Exception):
    """Base class of every exception this package raises."""


class APIConnectionError(RecollectError):
    """The server could not be reached, or the connection failed before a response came."""


class APITimeoutError(APIConnectionError):
    """The request timed out (connect, read, write or waiting for a pooled connection)."""


class APIStatusError(RecollectError):
    """The server answered with an error status.

    ``code`` is the server's stable snake_case identifier (``"rate_limited"``,
    ``"session_exists"``...), ``message`` its human-readable text, ``status_code`` the HTTP
    status, ``request_id`` the ``X-Request-ID`` to quote, and ``retry_after`` the seconds the
    server asked to wait (429 and 503), if any.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        code: str,
        request_id: str | None = None,
        retry_after: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.code = code
        self.request_id = request_id
        self.retry_after = retry_after
        self.headers = dict(headers or {})

    def __str__(self) -> str:
        suffix = f" (request id {self.request_id})" if self.request_id else ""
        return f"{self.status_code} {self.code}: {self.message}{suffix}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status_code={self.status_code}, code={self.code!r}, "
            f"message={self.message!r}, request_id={self.request_id!r})"
        )


class InvalidRequestError(APIStatusError):
    """The request itself is wrong (400, 413, 415, 422): retrying it cannot help."""


class BadRequestError(InvalidRequestError):
    """400: malformed JSON, parameter or session id; also ``long_term_memory_disabled``,
    ``embeddings_not_configured``."""


class PayloadTooLargeError(InvalidRequestError):
    """413: body, message (``message_too_large``) or message count (``too_many_messages``)."""


class UnsupportedMediaTypeError(InvalidRequestError):
    """415: wrong Content-Type."""


class ValidationError(InvalidRequestError):
    """422: well-formed but invalid fields (``invalid_field``)."""


class AuthenticationError(APIStatusError):
    """401: missing, unknown or revoked key (or admin token)."""


class PermissionDeniedError(APIStatusError):
    """403: e.g. ``quota_exceeded`` (the tenant's ``max_sessions``)."""


class NotFoundError(APIStatusError):
    """404: no such message, tenant or key; also the whole admin API without an admin token."""


class ConflictError(APIStatusError):
    """409: e.g. ``session_exists`` on import, a tenant id already taken."""


class RateLimitError(APIStatusError):
    """429: the tenant's rate limit (``retry_after`` says when to come back)."""


class ServiceUnavailableError(APIStatusError):
    """503 (and a proxy's 502/504): storage or embeddings unavailable; retry shortly."""


class InternalServerError(APIStatusError):
    """500 or another unexpected status."""


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    415: UnsupportedMediaTypeError,
    422: ValidationError,
    429: RateLimitError,
    502: ServiceUnavailableError,
    503: ServiceUnavailableError,
    504: ServiceUnavailableError,
}


def error_for_status(
    status_code: int,
    body: bytes,
    headers: Mapping[str, str],
    *,
    retry_after: float | None = None,
    reason: str = "",
) -> APIStatusError:
    """The exception for an error response. A body that is not the server's JSON shape (a
    proxy's HTML page) still gives a usable error: ``code`` ``http_<status>``."""
    code, message = f"http_{status_code}", reason or f"HTTP {status_code}"
    try:
        parsed: Any = json.loads(body) if body else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        code = str(parsed["error"].get("code") or code)
        message = str(parsed["error"].get("message") or message)
    cls = _BY_STATUS.get(status_code)
    if cls is None:
        cls = InvalidRequestError if 400 <= status_code < 500 else InternalServerError
    return cls(
        message,
        status_code=status_code,
        code=code,
        request_id=headers.get("x-request-id"),
        retry_after=retry_after,
        headers=headers,
    )
