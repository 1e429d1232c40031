"""Headers every response carries, set last (after the rate-limit headers)."""

from __future__ import annotations

from flask import Response, request

# Rate-limit refusals and unavailability; nginx adds it to its own 502/503.
RETRY_STATUSES = frozenset({429, 503})
# Static and public documents a cache may keep; everything else is a tenant's or the
# operator's data (or a key shown once) and must not be stored by any cache.
_CACHEABLE_BLUEPRINTS = frozenset({"docs"})


def finish(response: Response) -> Response:
    if response.status_code in RETRY_STATUSES:
        retry_after = response.headers.get("Retry-After")
        if retry_after is not None and retry_after.lstrip("-").isdigit() and int(retry_after) < 1:
            # A sub-second wait rounded down to 0, which clients read as "now".
            response.headers["Retry-After"] = "1"
    response.headers["X-Content-Type-Options"] = "nosniff"
    top = request.blueprints[-1] if request.blueprints else None
    if top not in _CACHEABLE_BLUEPRINTS:
        response.headers["Cache-Control"] = "no-store"
    return response
