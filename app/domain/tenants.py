"""Tenants, their policies and their API keys.

A tenant record stores only the policy fields an operator set; the effective policy is
those overrides laid over the configured defaults, so changing a default reaches every
tenant that did not choose otherwise.

Authentication is on every request's path, so it is served from a per-process cache whose
entries live at most ``cache_seconds`` (≤ 1 s): a revoked key or a changed policy is
honoured by every worker within that time, and a busy worker still asks Redis about a
given key at most once per interval.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import limits
import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator
from redis import Redis

from app.domain import keys as keymod
from app.domain.errors import Conflict, InvalidField, NotFound
from app.domain.keyspace import TENANT_ID_RE, Keyspace

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

    @field_validator("rate_limit")
    @classmethod
    def _valid_limit(cls, value: str | None) -> str | None:
        return validate_rate_limit(value) if value is not None else None


POLICY_FIELDS = tuple(Policy.model_fields)


@dataclass(frozen=True, slots=True)
class EffectivePolicy:
    rate_limit: str
    session_ttl_seconds: int
    window_size: int
    window_tokens: int | None
    max_message_bytes: int
    max_sessions: int | None
    summary_model: str
    summary_prompt: str | None
    summary_token_budget_daily: int


@dataclass(frozen=True, slots=True)
class PolicyDefaults:
    rate_limit: str = "1200/minute;60/second"
    session_ttl_seconds: int = 0
    window_size: int = 12
    window_tokens: int | None = None
    max_message_bytes: int = 64 * 1024
    max_sessions: int | None = None
    summary_model: str = "gpt-4o-mini"
    summary_prompt: str | None = None
    summary_token_budget_daily: int = 0

    def resolve(self, overrides: Policy) -> EffectivePolicy:
        values = {
            name: getattr(overrides, name) if getattr(overrides, name) is not None else getattr(self, name)
            for name in POLICY_FIELDS
        }
        return EffectivePolicy(**values)


@dataclass(frozen=True, slots=True)
class Tenant:
    id: str
    name: str
    created_at: str
    policy: Policy

    def to_dict(self, defaults: PolicyDefaults) -> dict[str, Any]:
        effective = defaults.resolve(self.policy)
        return {
            "id": self.id,
            "name": self.name,
            "created_at": self.created_at,
            "policy": self.policy.model_dump(exclude_none=True),
            "effective_policy": {name: getattr(effective, name) for name in POLICY_FIELDS},
        }


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as: a tenant, through one key (``None`` in drop-in mode)."""

    tenant_id: str
    key_id: str | None
    policy: EffectivePolicy


@dataclass(frozen=True, slots=True)
class KeyInfo:
    key_id: str
    prefix: str
    label: str | None
    created_at: str
    last_used_at: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "prefix": self.prefix,
            "label": self.label,
            "created_at": self.created_at,
            "last_used_at": self.last_used_at,
        }


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def validate_tenant_id(tenant_id: str) -> str:
    if not TENANT_ID_RE.match(tenant_id):
        raise InvalidField(
            "tenant id must be 1-63 characters of a-z, 0-9, '-' and '_', starting with a letter or digit"
        )
    return tenant_id


class TenantRegistry:
    LAST_USED_EVERY_SECONDS = 60.0

    def __init__(
        self,
        redis: Redis,
        keyspace: Keyspace,
        defaults: PolicyDefaults,
        *,
        cache_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis
        self._keys = keyspace
        self.defaults = defaults
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._lock = threading.Lock()
        # key_id -> (expires, (stored_hash, tenant_id) | None)
        self._key_cache: dict[str, tuple[float, tuple[str, str] | None]] = {}
        # tenant_id -> (expires, Tenant | None)
        # tenant_id -> (expires, (Tenant, its effective policy) | None): the policy is
        # resolved once per refresh, not on every authenticated request.
        self._tenant_cache: dict[str, tuple[float, tuple[Tenant, EffectivePolicy] | None]] = {}
        self._last_used_written: dict[str, float] = {}

    # --- tenants -----------------------------------------------------------------------

    def create_tenant(
        self,
        tenant_id: str,
        *,
        name: str | None = None,
        policy: Policy | None = None,
        with_key: bool = True,
    ) -> tuple[Tenant, keymod.NewKey | None]:
        validate_tenant_id(tenant_id)
        tenant = Tenant(tenant_id, name or tenant_id, utc_now_iso(), policy or Policy())
        record = self._record(tenant)
        key = self._keys.tenant(tenant_id)
        # HSETNX on created_at is the existence check and the claim in one command.
        if not self._redis.hsetnx(key, "created_at", tenant.created_at):
            raise Conflict(f"tenant {tenant_id!r} already exists", code="tenant_exists")
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(key, mapping=record)
        pipe.sadd(self._keys.tenants, tenant_id)
        pipe.execute()
        self._forget_tenant(tenant_id)  # a cached "no such tenant" must not outlive this
        new_key = self.create_key(tenant_id) if with_key else None
        return tenant, new_key

    def ensure_tenant(self, tenant_id: str) -> Tenant:
        """Create the tenant without a key if it does not exist (drop-in mode's tenant)."""
        try:
            return self.get_tenant(tenant_id)
        except NotFound:
            try:
                return self.create_tenant(tenant_id, with_key=False)[0]
            except Conflict:
                return self.get_tenant(tenant_id)

    def get_tenant(self, tenant_id: str) -> Tenant:
        tenant = self._load_tenant(tenant_id) if TENANT_ID_RE.match(tenant_id) else None
        if tenant is None:
            raise NotFound(f"tenant {tenant_id!r} not found", code="tenant_not_found")
        return tenant

    def list_tenants(self) -> list[Tenant]:
        ids = sorted(i.decode() for i in self._redis.smembers(self._keys.tenants))
        tenants = (self._load_tenant(i) for i in ids)
        return [t for t in tenants if t is not None]

    def update_tenant(
        self, tenant_id: str, *, name: str | None = None, policy_patch: dict[str, Any] | None = None
    ) -> Tenant:
        """Apply a partial update; a policy field set to ``None`` returns to the default."""
        current = self.get_tenant(tenant_id)
        merged = current.policy.model_dump() | (policy_patch or {})
        policy = Policy.model_validate(merged)
        tenant = Tenant(current.id, name or current.name, current.created_at, policy)
        self._redis.hset(self._keys.tenant(tenant_id), mapping=self._record(tenant))
        self._forget_tenant(tenant_id)
        return tenant

    def delete_tenant(self, tenant_id: str, *, erase: Callable[[str], int]) -> int:
        """Remove the tenant, its keys and (through ``erase``) all its data.

        Credentials go first so no new write can start; ``erase`` runs again after one
        cache interval to catch a write that was already past authentication.
        """
        self.get_tenant(tenant_id)
        key_ids = [k.decode() for k in self._redis.smembers(self._keys.tenant_keys(tenant_id))]
        pipe = self._redis.pipeline(transaction=False)
        for key_id in key_ids:
            pipe.unlink(self._keys.api_key(key_id))
        pipe.unlink(self._keys.tenant_keys(tenant_id))  # separate slots on a cluster
        pipe.unlink(self._keys.tenant(tenant_id))
        pipe.srem(self._keys.tenants, tenant_id)
        pipe.execute()
        self._forget_tenant(tenant_id)
        with self._lock:
            for key_id in key_ids:
                self._key_cache.pop(key_id, None)
        removed = erase(tenant_id)
        time.sleep(self._cache_seconds + 0.05)
        return removed + erase(tenant_id)

    # --- keys --------------------------------------------------------------------------

    def create_key(self, tenant_id: str, *, label: str | None = None) -> keymod.NewKey:
        self.get_tenant(tenant_id)
        new = keymod.generate_key()
        record = {
            "tenant": tenant_id,
            "hash": new.secret_hash,
            "created_at": utc_now_iso(),
        }
        if label:
            record["label"] = label
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(self._keys.api_key(new.key_id), mapping=record)
        pipe.sadd(self._keys.tenant_keys(tenant_id), new.key_id)
        pipe.execute()
        return new

    def list_keys(self, tenant_id: str) -> list[KeyInfo]:
        self.get_tenant(tenant_id)
        key_ids = sorted(k.decode() for k in self._redis.smembers(self._keys.tenant_keys(tenant_id)))
        pipe = self._redis.pipeline(transaction=False)
        for key_id in key_ids:
            pipe.hmget(self._keys.api_key(key_id), "created_at", "label", "last_used_at")
        infos = []
        for key_id, (created, label, last_used) in zip(key_ids, pipe.execute(), strict=True):
            if created is None:
                continue
            infos.append(
                KeyInfo(
                    key_id=key_id,
                    prefix=f"{keymod.KEY_PREFIX}{key_id}_",
                    label=label.decode() if label else None,
                    created_at=created.decode(),
                    last_used_at=last_used.decode() if last_used else None,
                )
            )
        return infos

    def revoke_key(self, tenant_id: str, key_id: str) -> None:
        self.get_tenant(tenant_id)
        owner = self._redis.hget(self._keys.api_key(key_id), "tenant")
        # A key of another tenant answers exactly like a missing one.
        if owner is None or owner.decode() != tenant_id:
            raise NotFound(f"key {key_id!r} not found", code="key_not_found")
        pipe = self._redis.pipeline(transaction=False)
        pipe.unlink(self._keys.api_key(key_id))
        pipe.srem(self._keys.tenant_keys(tenant_id), key_id)
        pipe.execute()
        with self._lock:
            self._key_cache.pop(key_id, None)

    # --- authentication ----------------------------------------------------------------

    def authenticate(self, api_key: str) -> Principal | None:
        parsed = keymod.parse_key(api_key)
        if parsed is None:
            return None
        key_id, secret = parsed
        entry = self._cached_key(key_id)
        # Hash and compare even for unknown ids so timing does not reveal which ids exist.
        stored_hash, tenant_id = entry if entry is not None else ("0" * 64, "")
        if not keymod.secret_matches(secret, stored_hash) or entry is None:
            return None
        entry = self._cached_tenant(tenant_id)
        if entry is None:
            return None
        self._touch(key_id)
        return Principal(tenant_id, key_id, entry[1])

    def principal_for(self, tenant_id: str) -> Principal | None:
        """The principal of a tenant acting without a key (drop-in mode)."""
        entry = self._cached_tenant(tenant_id)
        return Principal(tenant_id, None, entry[1]) if entry is not None else None

    def iter_tenant_ids(self) -> Iterator[str]:
        for raw in self._redis.sscan_iter(self._keys.tenants, count=500):
            yield raw.decode()

    # --- internals ---------------------------------------------------------------------

    def _record(self, tenant: Tenant) -> dict[str, str]:
        return {
            "name": tenant.name,
            "created_at": tenant.created_at,
            "policy": orjson.dumps(tenant.policy.model_dump(exclude_none=True)).decode(),
        }

    def _cached_key(self, key_id: str) -> tuple[str, str] | None:
        now = self._clock()
        hit = self._key_cache.get(key_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        raw = self._redis.hmget(self._keys.api_key(key_id), "hash", "tenant")
        entry = (raw[0].decode(), raw[1].decode()) if raw[0] and raw[1] else None
        with self._lock:
            self._key_cache[key_id] = (now + self._cache_seconds, entry)
            if len(self._key_cache) > 100_000:
                self._key_cache.clear()
        return entry

    def _load_tenant(self, tenant_id: str) -> Tenant | None:
        entry = self._cached_tenant(tenant_id)
        return entry[0] if entry is not None else None

    def _cached_tenant(self, tenant_id: str) -> tuple[Tenant, EffectivePolicy] | None:
        now = self._clock()
        hit = self._tenant_cache.get(tenant_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        raw = self._redis.hmget(self._keys.tenant(tenant_id), "name", "created_at", "policy")
        entry = None
        if raw[1] is not None:
            policy = Policy.model_validate(orjson.loads(raw[2] or b"{}"))
            tenant = Tenant(tenant_id, (raw[0] or b"").decode(), raw[1].decode(), policy)
            entry = (tenant, self.defaults.resolve(policy))
        with self._lock:
            self._tenant_cache[tenant_id] = (now + self._cache_seconds, entry)
            if len(self._tenant_cache) > 100_000:
                self._tenant_cache.clear()
        return entry

    def _forget_tenant(self, tenant_id: str) -> None:
        with self._lock:
            self._tenant_cache.pop(tenant_id, None)

    def _touch(self, key_id: str) -> None:
        """Record ``last_used_at`` at most once a minute per key and process."""
        now = self._clock()
        if now - self._last_used_written.get(key_id, -1e9) < self.LAST_USED_EVERY_SECONDS:
            return
        self._last_used_written[key_id] = now
        # Only an existing record is updated: a key revoked a moment ago must not reappear.
        self._redis.eval(_TOUCH_SCRIPT, 1, self._keys.api_key(key_id), utc_now_iso())


_TOUCH_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'last_used_at', ARGV[1]) end
return 0
"""


def policy_from_fields(fields: dict[str, Any]) -> Policy:
    """Build a Policy from request fields, mapping validation problems to InvalidField."""
    from pydantic import ValidationError

    try:
        return Policy.model_validate({k: v for k, v in fields.items() if k in POLICY_FIELDS})
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise InvalidField(f"{loc}: {first['msg']}") from None
