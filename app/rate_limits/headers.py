"""The ``X-RateLimit-*`` headers of the limit a request was counted against, and the wait
a refusal announces in ``Retry-After``.

flask-limiter's own header hook does the same, but on every answer it also parses and
rewrites ``Retry-After``, which only a 429 or a 503 should carry: a tenth of a GET's CPU
went to headers. Its hook is switched off (``headers_enabled=False``) and this one reads the
same ``current_limit``, whether flask-limiter or the store (``in_store``) counted the
request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis.exceptions
from flask import Response
from flask_limiter import Limiter

from app.response_headers import RETRY_STATUSES

log = logging.getLogger("recollect")


def rate_limit_headers(limiter: Limiter) -> Callable[[Response], Response]:
    """An ``after_request`` hook adding ``limiter``'s headers to a counted request's answer."""

    def add_headers(response: Response) -> Response:
        limit = limiter.current_limit
        if limit is None:
            return response  # not counted: exempt, unauthenticated, or before the limiter
        try:
            reset_at, remaining = limit.reset_at, limit.remaining
        except (redis.exceptions.RedisError, redis.exceptions.RedisClusterException):
            # As flask-limiter with swallow_errors: the answer stands without the headers.
            log.warning("rate limit headers left out: the limit's window could not be read")
            return response
        headers = response.headers
        headers.add("X-RateLimit-Limit", str(limit.limit.amount))
        headers.add("X-RateLimit-Remaining", str(remaining))
        headers.add("X-RateLimit-Reset", str(reset_at))
        if response.status_code in RETRY_STATUSES:
            now = time.time()
            existing = headers.get("Retry-After")
            if existing is not None and existing.isdigit():
                reset_at = max(reset_at, int(now + int(existing)))
            # A wait under a second comes out 0; app.response_headers makes it 1.
            headers["Retry-After"] = str(int(reset_at - now))
        return response

    return add_headers
