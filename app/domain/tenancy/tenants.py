"""Tenants and their API keys, as operators manage them."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from app.domain.clock import utc_now_iso
from app.domain.errors import Conflict, InvalidField, NotFound
from app.domain.keyspace import TENANT_ID_RE
from app.domain.tenancy import api_keys
from app.domain.tenancy.policy import Policy, PolicyDefaults
from app.domain.tenancy.store import TenancyStore, TenantRecord

if TYPE_CHECKING:
    from app.domain.tenancy.cache import TenancyCache


@dataclass(frozen=True, slots=True)
class Tenant:
    id: str
    name: str
    created_at: str
    policy: Policy

    def to_dict(self, defaults: PolicyDefaults) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "created_at": self.created_at,
            "policy": self.policy.model_dump(exclude_none=True),
            "effective_policy": defaults.resolve(self.policy).to_dict(),
        }


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What an operator may see of an API key: never its secret."""

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


def validate_tenant_id(tenant_id: str) -> str:
    if not TENANT_ID_RE.fullmatch(tenant_id):
        raise InvalidField(
            "tenant id must be 1-63 characters of a-z, 0-9, '-' and '_', starting with a letter or digit"
        )
    return tenant_id


def _record(tenant: Tenant) -> TenantRecord:
    return TenantRecord(
        tenant.name, tenant.created_at, orjson.dumps(tenant.policy.model_dump(exclude_none=True))
    )


class TenantRegistry:
    def __init__(
        self,
        store: TenancyStore,
        cache: TenancyCache,
        defaults: PolicyDefaults,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._store = store
        self._cache = cache
        self.defaults = defaults
        self._sleep = sleep

    # --- tenants -----------------------------------------------------------------------

    def create_tenant(
        self,
        tenant_id: str,
        *,
        name: str | None = None,
        policy: Policy | None = None,
        with_key: bool = True,
    ) -> tuple[Tenant, api_keys.NewKey | None]:
        validate_tenant_id(tenant_id)
        tenant = Tenant(tenant_id, name or tenant_id, utc_now_iso(), policy or Policy())
        if not self._store.claim_tenant(tenant_id, tenant.created_at):
            raise Conflict(f"tenant {tenant_id!r} already exists", code="tenant_exists")
        self._store.write_tenant(tenant_id, _record(tenant), listed=True)
        self._cache.forget_tenant(tenant_id)  # a cached "no such tenant" must not outlive this
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
                # Another worker created it meanwhile. This process may have cached the
                # miss (the lookup that sent us here): read the winner's record afresh.
                self._cache.forget_tenant(tenant_id)
                return self.get_tenant(tenant_id)

    def get_tenant(self, tenant_id: str) -> Tenant:
        """The tenant as stored now: an operator reads what any worker just wrote, and a
        patch applies to the current policy (authentication uses the ≤ 1 s cache)."""
        entry = self._cache.fresh_tenant(tenant_id) if TENANT_ID_RE.fullmatch(tenant_id) else None
        if entry is None:
            raise NotFound(f"tenant {tenant_id!r} not found", code="tenant_not_found")
        return entry.tenant

    def list_tenants(self) -> list[Tenant]:
        entries = (self._cache.fresh_tenant(i) for i in self._store.tenant_ids())
        return [e.tenant for e in entries if e is not None]

    def update_tenant(
        self, tenant_id: str, *, name: str | None = None, policy_patch: dict[str, Any] | None = None
    ) -> Tenant:
        """Apply a partial update; a policy field set to ``None`` returns to the default."""
        current = self.get_tenant(tenant_id)
        merged = current.policy.model_dump() | (policy_patch or {})
        policy = Policy.model_validate(merged)
        tenant = Tenant(current.id, name or current.name, current.created_at, policy)
        self._store.write_tenant(tenant_id, _record(tenant))
        self._cache.forget_tenant(tenant_id)
        return tenant

    def delete_tenant(self, tenant_id: str, *, erase: Callable[[str], int]) -> int:
        """Remove the tenant, its keys and (through ``erase``) all its data; returns how
        many data keys were removed.

        Credentials go first so no new write can start; ``erase`` runs again after one
        cache interval to catch a write that was already past authentication.
        """
        self.get_tenant(tenant_id)
        key_ids = self._store.delete_tenant(tenant_id)
        self._cache.forget_tenant(tenant_id)
        self._cache.forget_keys(key_ids)
        removed = erase(tenant_id)
        self._sleep(self._cache.seconds + 0.05)
        return removed + erase(tenant_id)

    # --- API keys ----------------------------------------------------------------------

    def create_key(self, tenant_id: str, *, label: str | None = None) -> api_keys.NewKey:
        self.get_tenant(tenant_id)
        new = api_keys.generate_key()
        # The cache may still hold a tenant another worker has just deleted: the store
        # writes the key only for a tenant whose record exists (and outlives the key).
        if not self._store.add_api_key_if_tenant_exists(
            tenant_id, new.key_id, secret_hash=new.secret_hash, created_at=utc_now_iso(), label=label
        ):
            self._cache.forget_tenant(tenant_id)
            raise NotFound(f"tenant {tenant_id!r} not found", code="tenant_not_found")
        return new

    def list_keys(self, tenant_id: str) -> list[KeyInfo]:
        self.get_tenant(tenant_id)
        return [
            KeyInfo(r.key_id, api_keys.public_prefix(r.key_id), r.label, r.created_at, r.last_used_at)
            for r in self._store.api_keys(tenant_id)
        ]

    def revoke_key(self, tenant_id: str, key_id: str) -> None:
        self.get_tenant(tenant_id)
        # A key of another tenant answers exactly like a missing one.
        if self._store.api_key_owner(key_id) != tenant_id:
            raise NotFound(f"key {key_id!r} not found", code="key_not_found")
        self._store.delete_api_key(tenant_id, key_id)
        self._cache.forget_keys([key_id])
