"""The per-process cache on authentication's path: API key secrets and tenant records.

Entries live at most ``seconds`` (≤ 1 s), so a revoked key or a changed policy is honoured
by every worker within that time, and a busy worker asks Redis about a given key or tenant
at most once per interval. Misses are cached too: garbage keys cost Redis nothing more.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from cachetools import TTLCache

from app.domain.tenancy.policy import EffectivePolicy, Policy, PolicyDefaults
from app.domain.tenancy.store import StoredSecret, TenancyStore
from app.domain.tenancy.tenants import Tenant

MAX_ENTRIES = 100_000
_MISSING = object()


@dataclass(frozen=True, slots=True)
class CachedTenant:
    tenant: Tenant
    effective: EffectivePolicy  # resolved once per refresh, not on every request


class TenancyCache:
    def __init__(
        self,
        store: TenancyStore,
        defaults: PolicyDefaults,
        *,
        seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._defaults = defaults
        self.seconds = seconds
        self._lock = threading.Lock()
        self._secrets: TTLCache[str, StoredSecret | None] = TTLCache(MAX_ENTRIES, seconds, timer=clock)
        self._tenants: TTLCache[str, CachedTenant | None] = TTLCache(MAX_ENTRIES, seconds, timer=clock)

    def secret(self, key_id: str) -> StoredSecret | None:
        with self._lock:
            hit = self._secrets.get(key_id, _MISSING)
        if hit is not _MISSING:
            return hit  # type: ignore[return-value]
        entry = self._store.stored_secret(key_id)
        with self._lock:
            self._secrets[key_id] = entry
        return entry

    def tenant(self, tenant_id: str) -> CachedTenant | None:
        with self._lock:
            hit = self._tenants.get(tenant_id, _MISSING)
        if hit is not _MISSING:
            return hit  # type: ignore[return-value]
        return self.fresh_tenant(tenant_id)

    def fresh_tenant(self, tenant_id: str) -> CachedTenant | None:
        """The tenant as Redis holds it now (and cached so): for reads that must see every
        write, whichever process made it (the admin API's, and a patch's base)."""
        record = self._store.read_tenant(tenant_id)
        entry = None
        if record is not None:
            policy = Policy.model_validate(orjson.loads(record.policy_json))
            tenant = Tenant(tenant_id, record.name, record.created_at, policy)
            entry = CachedTenant(tenant, self._defaults.resolve(policy))
        with self._lock:
            self._tenants[tenant_id] = entry
        return entry

    def forget_tenant(self, tenant_id: str) -> None:
        with self._lock:
            self._tenants.pop(tenant_id, None)

    def forget_keys(self, key_ids: list[str]) -> None:
        with self._lock:
            for key_id in key_ids:
                self._secrets.pop(key_id, None)
