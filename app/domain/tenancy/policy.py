"""Tenant policies: the overrides an operator sets, laid over the configured defaults.

A tenant record stores only the fields an operator set, so changing a default reaches
every tenant that did not choose otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import limits
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from app.domain.errors import InvalidField

MAX_LIMIT_WINDOW_SECONDS = 366 * 86_400
MAX_LIMIT_AMOUNT = 1_000_000_000


def validate_rate_limit(value: str) -> str:
    """A flask-limiter limit string whose windows Redis can actually expire (1 s to 1 year)."""
    try:
        parsed = limits.parse_many(value)
    except ValueError:
        raise ValueError("not a rate limit string (e.g. '600/minute;30/second')") from None
    for item in parsed:
        if not 1 <= item.amount <= MAX_LIMIT_AMOUNT or not 1 <= item.get_expiry() <= MAX_LIMIT_WINDOW_SECONDS:
            raise ValueError(
                f"each limit must allow 1-{MAX_LIMIT_AMOUNT} requests per window of at most a year"
            )
    return value


class Policy(BaseModel):
    """Per-tenant overrides; ``None`` means "use the configured default"."""

    model_config = ConfigDict(extra="forbid")

    rate_limit: str | None = Field(None, min_length=1, max_length=200)
    session_ttl_seconds: int | None = Field(None, ge=0, le=10 * 365 * 86_400)
    window_size: int | None = Field(None, ge=2, le=1000)
    window_tokens: int | None = Field(None, ge=64, le=1_000_000)
    max_message_bytes: int | None = Field(None, ge=64, le=16 * 1024 * 1024)
    max_sessions: int | None = Field(None, ge=1)
    summary_model: str | None = Field(None, min_length=1, max_length=200)
    summary_prompt: str | None = Field(None, min_length=1, max_length=8000)
    summary_token_budget_daily: int | None = Field(None, ge=0)
    long_term_memory: bool | None = None

    @field_validator("rate_limit")
    @classmethod
    def _valid_limit(cls, value: str | None) -> str | None:
        return validate_rate_limit(value) if value is not None else None


POLICY_FIELDS = tuple(Policy.model_fields)


@dataclass(frozen=True, slots=True)
class EffectivePolicy:
    """The policy a tenant's requests run under: every field has a value."""

    rate_limit: str
    session_ttl_seconds: int
    window_size: int
    window_tokens: int | None
    max_message_bytes: int
    max_sessions: int | None
    summary_model: str
    summary_prompt: str | None
    summary_token_budget_daily: int
    long_term_memory: bool

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in POLICY_FIELDS}


class PolicyDefaults(EffectivePolicy):
    """The configured defaults (built from ``Settings`` in one place: ``app.extensions``)."""

    __slots__ = ()

    def resolve(self, overrides: Policy) -> EffectivePolicy:
        values = {
            name: getattr(overrides, name) if getattr(overrides, name) is not None else getattr(self, name)
            for name in POLICY_FIELDS
        }
        return EffectivePolicy(**values)


def policy_from_fields(fields: dict[str, Any]) -> Policy:
    """A Policy from request fields, with validation problems as ``InvalidField``."""
    try:
        return Policy.model_validate({k: v for k, v in fields.items() if k in POLICY_FIELDS})
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise InvalidField(f"{loc}: {first['msg']}") from None
