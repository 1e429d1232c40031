"""Domain exceptions. The HTTP layer maps each class to one status; the domain never does."""

from __future__ import annotations


class RecollectError(Exception):
    """Base class: ``code`` is the stable snake_case identifier clients may switch on."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidRequest(RecollectError):
    code = "bad_request"


class InvalidField(RecollectError):
    code = "invalid_field"


class Unauthenticated(RecollectError):
    code = "unauthorized"


class Forbidden(RecollectError):
    code = "forbidden"


class QuotaExceeded(Forbidden):
    code = "quota_exceeded"


class NotFound(RecollectError):
    code = "not_found"


class Conflict(RecollectError):
    code = "conflict"


class TooLarge(RecollectError):
    code = "payload_too_large"


class RateLimited(RecollectError):
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int = 60) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StoreUnavailable(RecollectError):
    """Redis cannot answer right now (down, hung, loading, failing over): retry shortly.
    ``cause`` names the client's exception class, for logs; it never holds request data."""

    code = "store_unavailable"

    def __init__(self, message: str, *, cause: str = "unknown") -> None:
        super().__init__(message)
        self.cause = cause


class EmbeddingsUnavailable(RecollectError):
    """The embedding service failed a query's embedding; retry shortly."""

    code = "embeddings_unavailable"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after or 1))
