"""When to send a request again, and after how long (shared by the sync and async clients)."""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass

import httpx

# 429 and 503 mean "not done, come back later" (the server sends Retry-After with both).
RETRY_ALWAYS = frozenset({429, 503})
# A proxy's 502/504 may come after the server did the work: resend only what is replay-safe.
RETRY_IF_REPLAY_SAFE = frozenset({502, 504})

# Failures that happen before a request reaches the server: resending cannot repeat anything.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Failures after (part of) the request may have been sent: the server may have acted.
_AMBIGUOUS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True)
class RetryPolicy:
    """``max_retries`` resends at most; each wait is the server's ``Retry-After`` when it
    gave a positive one, else exponential backoff with jitter (``backoff_base`` × 2^attempt, at most
    ``max_retry_wait``). A ``Retry-After`` longer than ``max_retry_wait`` is not waited for:
    the error is raised at once with its ``retry_after``, so the caller decides."""

    max_retries: int = 3
    max_retry_wait: float = 30.0
    backoff_base: float = 0.5

    def backoff(self, attempt: int) -> float:
        ceiling = min(self.max_retry_wait, self.backoff_base * 2**attempt)
        # Full jitter in the upper half: clients that failed together do not return together.
        return ceiling * (0.5 + random.random() / 2)

    def after_status(
        self, attempt: int, status: int, retry_after: float | None, replay_safe: bool
    ) -> float | None:
        """Seconds to wait before resending after an error status, or None to give up."""
        if attempt >= self.max_retries:
            return None
        if status not in RETRY_ALWAYS and not (replay_safe and status in RETRY_IF_REPLAY_SAFE):
            return None
        if not retry_after:
            # None, or 0: servers round a sub-second wait down to 0 (Recollect's limiter
            # does), and resending at once would spend every retry inside the same window.
            return self.backoff(attempt)
        return retry_after if retry_after <= self.max_retry_wait else None

    def after_error(self, attempt: int, error: Exception, replay_safe: bool) -> float | None:
        """Seconds to wait before resending after a transport failure, or None to give up."""
        if attempt >= self.max_retries:
            return None
        if isinstance(error, _NOT_SENT) or (replay_safe and isinstance(error, _AMBIGUOUS)):
            return self.backoff(attempt)
        return None


def reached_server(error: Exception) -> bool:
    """Whether the failed attempt may have been processed by the server."""
    return not isinstance(error, _NOT_SENT)
