"""The ``Retry-After`` an OpenAI-compatible server sent with a refusal, for the backoff."""

from __future__ import annotations

from typing import Any


def retry_after_seconds(exc: Any) -> float | None:
    """Seconds from the ``Retry-After`` header of an ``openai`` error's response, if any."""
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
