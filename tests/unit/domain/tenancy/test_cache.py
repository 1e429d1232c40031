"""The per-process cache on authentication's path: secrets and tenants, hits and misses,
each kept for at most the cache interval."""

from __future__ import annotations

import orjson
import pytest

from app.domain.tenancy.cache import CachedTenant, TenancyCache
from app.domain.tenancy.policy import Policy
from app.domain.tenancy.store import StoredSecret, TenantRecord
from app.domain.tenancy.tenants import Tenant

from .conftest import CACHE_SECONDS

CREATED = "2026-01-02T03:04:05.678Z"


def put_tenant(store, tenant_id: str = "acme", *, name: str = "Acme", policy: dict | None = None) -> None:
    store.write_tenant(tenant_id, TenantRecord(name, CREATED, orjson.dumps(policy or {})), listed=True)


def put_key(store, key_id: str = "k1", tenant_id: str = "acme", digest: str = "h1") -> None:
    store.add_api_key(tenant_id, key_id, secret_hash=digest, created_at=CREATED, label=None)


# --- secrets ------------------------------------------------------------------------------------


def test_a_secret_is_read_from_redis_once_per_interval(cache, counting, store):
    put_key(store)
    assert cache.secret("k1") == StoredSecret("h1", "acme")
    assert cache.secret("k1") == StoredSecret("h1", "acme")
    assert counting.calls["stored_secret"] == 1


def test_a_cached_secret_outlives_its_deletion_until_the_interval_ends(cache, store, clock):
    put_key(store)
    assert cache.secret("k1") is not None
    store.delete_api_key("acme", "k1")
    clock.advance(CACHE_SECONDS - 0.001)
    assert cache.secret("k1") == StoredSecret("h1", "acme"), "still within the interval"
    clock.advance(0.001)
    assert cache.secret("k1") is None, "an entry lives strictly less than the interval"


def test_an_unknown_key_is_cached_as_a_miss(cache, counting, store, clock):
    assert cache.secret("k1") is None
    put_key(store)
    assert cache.secret("k1") is None, "the miss is remembered"
    assert counting.calls["stored_secret"] == 1
    clock.advance(CACHE_SECONDS)
    assert cache.secret("k1") == StoredSecret("h1", "acme")
    assert counting.calls["stored_secret"] == 2


def test_forgetting_keys_drops_only_those_keys(cache, store, counting):
    put_key(store, "k1")
    put_key(store, "k2", digest="h2")
    cache.secret("k1")
    cache.secret("k2")
    store.delete_api_key("acme", "k1")
    store.delete_api_key("acme", "k2")
    cache.forget_keys(["k1", "never-cached"])
    assert cache.secret("k1") is None
    assert cache.secret("k2") == StoredSecret("h2", "acme"), "k2 was not forgotten"
    assert counting.calls["stored_secret"] == 3


def test_a_cache_interval_of_zero_caches_nothing(counting, store, defaults, clock):
    cache = TenancyCache(counting, defaults, seconds=0, clock=clock)  # type: ignore[arg-type]
    put_key(store)
    put_tenant(store)
    for _ in range(3):
        assert cache.secret("k1") is not None
        assert cache.tenant("acme") is not None
    assert counting.calls["stored_secret"] == 3
    assert counting.calls["read_tenant"] == 3


# --- tenants ------------------------------------------------------------------------------------


def test_a_tenant_entry_carries_the_record_and_the_policy_resolved_against_the_defaults(
    cache, store, defaults
):
    put_tenant(store, policy={"window_size": 4, "summary_model": "small"})
    entry = cache.tenant("acme")
    policy = Policy(window_size=4, summary_model="small")
    assert entry == CachedTenant(Tenant("acme", "Acme", CREATED, policy), defaults.resolve(policy))
    assert entry.effective.window_size == 4
    assert entry.effective.rate_limit == defaults.rate_limit


def test_a_tenant_is_read_from_redis_once_per_interval(cache, counting, store, clock):
    put_tenant(store)
    first = cache.tenant("acme")
    assert cache.tenant("acme") is first
    assert counting.calls["read_tenant"] == 1
    clock.advance(CACHE_SECONDS)
    assert cache.tenant("acme") == first
    assert counting.calls["read_tenant"] == 2


def test_a_policy_change_reaches_a_cache_only_after_its_interval(cache, store, clock):
    put_tenant(store, policy={"window_size": 4})
    assert cache.tenant("acme").effective.window_size == 4
    put_tenant(store, policy={"window_size": 9})
    clock.advance(CACHE_SECONDS / 2)
    assert cache.tenant("acme").effective.window_size == 4
    clock.advance(CACHE_SECONDS / 2)
    assert cache.tenant("acme").effective.window_size == 9


def test_an_unknown_tenant_is_cached_as_a_miss(cache, counting, store, clock):
    assert cache.tenant("acme") is None
    put_tenant(store)
    assert cache.tenant("acme") is None
    assert counting.calls["read_tenant"] == 1
    clock.advance(CACHE_SECONDS)
    assert cache.tenant("acme") is not None


def test_forgetting_a_tenant_makes_the_next_read_go_to_redis(cache, store):
    assert cache.tenant("acme") is None
    put_tenant(store, name="Acme")
    cache.forget_tenant("acme")
    assert cache.tenant("acme").tenant.name == "Acme"
    put_tenant(store, name="Acme Corp")
    cache.forget_tenant("acme")
    cache.forget_tenant("never-cached")
    assert cache.tenant("acme").tenant.name == "Acme Corp"


def test_a_tenant_stored_before_its_name_was_written_gets_an_empty_name_and_the_defaults(
    cache, store, defaults
):
    store.claim_tenant("acme", CREATED)
    entry = cache.tenant("acme")
    assert entry.tenant == Tenant("acme", "", CREATED, Policy())
    assert entry.effective == defaults.resolve(Policy())


def test_another_default_reaches_every_tenant_that_did_not_override_it(store, defaults, clock):
    put_tenant(store, "plain")
    put_tenant(store, "custom", policy={"window_size": 4})
    changed = type(defaults)(**(defaults.to_dict() | {"window_size": 30}))
    cache = TenancyCache(store, changed, clock=clock)
    assert cache.tenant("plain").effective.window_size == 30
    assert cache.tenant("custom").effective.window_size == 4


def test_secrets_and_tenants_are_cached_separately(cache, store):
    put_key(store, "acme")  # a key id that happens to equal a tenant id
    put_tenant(store)
    assert cache.secret("acme") == StoredSecret("h1", "acme")
    assert cache.tenant("acme").tenant.id == "acme"


@pytest.mark.parametrize("seconds", [0.25, 1.0])
def test_the_interval_is_the_one_the_cache_was_built_with(counting, store, defaults, clock, seconds):
    cache = TenancyCache(counting, defaults, seconds=seconds, clock=clock)  # type: ignore[arg-type]
    assert cache.seconds == seconds
    put_key(store)
    start = clock.now
    cache.secret("k1")
    clock.now = start + seconds * 0.99
    cache.secret("k1")
    assert counting.calls["stored_secret"] == 1
    clock.now = start + seconds
    cache.secret("k1")
    assert counting.calls["stored_secret"] == 2
