"""Authentication: a presented API key → the principal a request acts as."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from app.domain.clock import utc_now_iso
from app.domain.tenancy import api_keys
from app.domain.tenancy.cache import TenancyCache
from app.domain.tenancy.policy import EffectivePolicy
from app.domain.tenancy.store import TenancyStore

LAST_USED_EVERY_SECONDS = 60.0
_NO_HASH = "0" * 64


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as: a tenant, through one key (``None`` in drop-in mode)."""

    tenant_id: str
    key_id: str | None
    policy: EffectivePolicy


class Authenticator:
    def __init__(
        self, store: TenancyStore, cache: TenancyCache, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._store = store
        self._cache = cache
        self._clock = clock
        self._last_used_written: dict[str, float] = {}

    def authenticate(self, api_key: str) -> Principal | None:
        parsed = api_keys.parse_key(api_key)
        if parsed is None:
            return None
        key_id, secret = parsed
        stored = self._cache.secret(key_id)
        # Hash and compare even for unknown ids so timing does not reveal which ids exist.
        matches = api_keys.secret_matches(secret, stored.secret_hash if stored is not None else _NO_HASH)
        if not matches or stored is None:
            return None
        entry = self._cache.tenant(stored.tenant_id)
        if entry is None:
            return None
        self._touch(key_id)
        return Principal(stored.tenant_id, key_id, entry.effective)

    def principal_for(self, tenant_id: str) -> Principal | None:
        """The principal of a tenant acting without a key (drop-in mode, folds)."""
        entry = self._cache.tenant(tenant_id)
        return Principal(tenant_id, None, entry.effective) if entry is not None else None

    def _touch(self, key_id: str) -> None:
        """Record ``last_used_at`` at most once a minute per key and process."""
        now = self._clock()
        if now - self._last_used_written.get(key_id, -1e9) < LAST_USED_EVERY_SECONDS:
            return
        self._last_used_written[key_id] = now
        self._store.touch_api_key(key_id, utc_now_iso())
