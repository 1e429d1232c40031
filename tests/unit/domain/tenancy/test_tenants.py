"""Tenants and their API keys as operators manage them: create, read, update, delete,
and issue, list and revoke keys."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError

from app.domain.errors import Conflict, InvalidField, NotFound
from app.domain.tenancy import api_keys
from app.domain.tenancy.authentication import Authenticator
from app.domain.tenancy.cache import TenancyCache
from app.domain.tenancy.policy import Policy
from app.domain.tenancy.store import StoredSecret
from app.domain.tenancy.tenants import KeyInfo, Tenant, TenantRegistry, validate_tenant_id

from .conftest import CACHE_SECONDS

ISO_MS_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def no_data(tenant_id: str) -> int:
    return 0


# --- tenant ids ----------------------------------------------------------------------------------


@pytest.mark.parametrize("tenant_id", ["a", "0", "acme", "acme-corp_2", "9lives", "a" * 63])
def test_a_valid_tenant_id_is_returned_as_is(tenant_id):
    assert validate_tenant_id(tenant_id) == tenant_id


@pytest.mark.parametrize(
    "tenant_id", ["", "-acme", "_acme", "Acme", "ac me", "acme:1", "acme/x", "acme.io", "é", "a" * 64]
)
def test_an_invalid_tenant_id_is_an_invalid_field_explaining_the_rule(tenant_id):
    with pytest.raises(InvalidField, match="tenant id must be 1-63 characters of a-z, 0-9") as caught:
        validate_tenant_id(tenant_id)
    assert caught.value.code == "invalid_field"


@pytest.mark.parametrize("tenant_id", ["acme\n", "a\n", "acme\n\n", "\nacme"])
def test_a_tenant_id_with_a_newline_is_invalid_and_never_reaches_redis(
    tenant_id, registry, counting, fake_redis
):
    """``$`` would match before a final newline: "acme\\n" must not pass for a second tenant."""
    with pytest.raises(InvalidField):
        validate_tenant_id(tenant_id)
    with pytest.raises(InvalidField):
        registry.create_tenant(tenant_id)
    with pytest.raises(InvalidField):
        registry.ensure_tenant(tenant_id)
    with pytest.raises(NotFound):
        registry.get_tenant(tenant_id)
    assert counting.calls["read_tenant"] == 0
    assert fake_redis.keys("*") == []


# --- creating ----------------------------------------------------------------------------------


def test_a_new_tenant_is_named_after_its_id_has_no_overrides_and_gets_a_first_key(registry, store):
    tenant, key = registry.create_tenant("acme")
    assert (tenant.id, tenant.name, tenant.policy) == ("acme", "acme", Policy())
    assert ISO_MS_UTC.match(tenant.created_at)
    assert key is not None and api_keys.parse_key(key.api_key) is not None
    assert store.stored_secret(key.key_id) == StoredSecret(key.secret_hash, "acme")
    assert store.tenant_ids() == ["acme"]


def test_a_new_tenant_keeps_the_name_and_policy_it_was_created_with(registry, store, defaults, clock):
    policy = Policy(window_size=4, rate_limit="5/second")
    created, _ = registry.create_tenant("acme", name="Acme Corp", policy=policy)
    fresh = TenantRegistry(store, TenancyCache(store, defaults, clock=clock), defaults)
    assert fresh.get_tenant("acme") == created
    assert fresh.get_tenant("acme") == Tenant("acme", "Acme Corp", created.created_at, policy)


def test_a_tenant_can_be_created_without_a_key(registry, store):
    tenant, key = registry.create_tenant("acme", with_key=False)
    assert key is None
    assert store.api_key_ids("acme") == []
    assert registry.get_tenant("acme") == tenant


def test_creating_a_tenant_that_exists_is_a_conflict_and_changes_nothing(registry, store):
    original, first_key = registry.create_tenant("acme", name="Original")
    with pytest.raises(Conflict, match="tenant 'acme' already exists") as caught:
        registry.create_tenant("acme", name="Usurper", policy=Policy(window_size=4))
    assert caught.value.code == "tenant_exists"
    assert registry.get_tenant("acme") == original
    assert store.api_key_ids("acme") == [first_key.key_id], "no key is issued to the loser"


def test_an_invalid_tenant_id_is_refused_before_anything_is_written(registry, fake_redis):
    with pytest.raises(InvalidField):
        registry.create_tenant("Not Valid")
    assert fake_redis.keys("*") == []


def test_a_tenant_created_right_after_a_failed_lookup_is_found_at_once(registry):
    with pytest.raises(NotFound):
        registry.get_tenant("acme")  # caches the miss
    tenant, _ = registry.create_tenant("acme")
    assert registry.get_tenant("acme") == tenant


def test_a_tenant_shows_its_overrides_and_the_policy_it_runs_under(registry, defaults):
    tenant, _ = registry.create_tenant("acme", name="Acme", policy=Policy(window_size=4))
    shown = tenant.to_dict(defaults)
    assert shown == {
        "id": "acme",
        "name": "Acme",
        "created_at": tenant.created_at,
        "policy": {"window_size": 4},
        "effective_policy": defaults.resolve(Policy(window_size=4)).to_dict(),
    }
    assert shown["effective_policy"]["rate_limit"] == defaults.rate_limit


# --- ensure_tenant (drop-in mode) -------------------------------------------------------------


def test_ensure_tenant_creates_a_missing_tenant_without_a_key(registry, store):
    tenant = registry.ensure_tenant("open")
    assert (tenant.id, tenant.name, tenant.policy) == ("open", "open", Policy())
    assert store.api_key_ids("open") == []
    assert store.tenant_ids() == ["open"]


def test_ensure_tenant_returns_an_existing_tenant_untouched(registry, store):
    existing, key = registry.create_tenant("open", name="Open", policy=Policy(window_size=4))
    assert registry.ensure_tenant("open") == existing
    assert registry.ensure_tenant("open") == existing
    assert store.api_key_ids("open") == [key.key_id]


def test_ensure_tenant_returns_the_tenant_another_worker_created_meanwhile(store, defaults, clock):
    """A lost creation race ends in the winner's tenant, when no miss is cached."""

    class CreatedMeanwhile:
        def __init__(self) -> None:
            self.raced = False

        def __getattr__(self, name: str) -> Any:
            return getattr(store, name)

        def read_tenant(self, tenant_id: str):
            found = store.read_tenant(tenant_id)
            if not self.raced:
                self.raced = True
                winner = TenantRegistry(store, TenancyCache(store, defaults, clock=clock), defaults)
                winner.create_tenant(tenant_id, name="Winner", with_key=False)
            return found

    racing = CreatedMeanwhile()
    cache = TenancyCache(racing, defaults, seconds=0, clock=clock)  # type: ignore[arg-type]
    loser = TenantRegistry(racing, cache, defaults)  # type: ignore[arg-type]
    assert loser.ensure_tenant("open").name == "Winner"
    assert store.tenant_ids() == ["open"]


def test_ensure_tenant_survives_losing_the_race_with_a_cached_miss(store, defaults, clock):
    """Two workers create the drop-in tenant at once: the loser had cached "no such tenant"
    (its first request's lookup), and its fallback read must not answer from that miss."""
    cache_a, cache_b = TenancyCache(store, defaults, clock=clock), TenancyCache(store, defaults, clock=clock)
    a, b = TenantRegistry(store, cache_a, defaults), TenantRegistry(store, cache_b, defaults)
    authenticator_a = Authenticator(store, cache_a, clock=clock)
    assert authenticator_a.principal_for("open") is None  # caches the miss in worker a
    created = b.ensure_tenant("open")
    assert a.ensure_tenant("open") == created
    principal = authenticator_a.principal_for("open")  # what app.auth asks next
    assert principal is not None and principal.tenant_id == "open"
    assert store.tenant_ids() == ["open"] and store.api_key_ids("open") == []


def test_ensure_tenant_refuses_an_invalid_id(registry):
    with pytest.raises(InvalidField):
        registry.ensure_tenant("Open Tenant")


# --- reading -----------------------------------------------------------------------------------


def test_an_unknown_tenant_is_not_found(registry):
    with pytest.raises(NotFound, match="tenant 'nobody' not found") as caught:
        registry.get_tenant("nobody")
    assert caught.value.code == "tenant_not_found"


def test_an_invalid_tenant_id_is_not_found_without_asking_redis(registry, counting):
    for bad in ("Bad Id", "", "x" * 64, "../etc"):
        with pytest.raises(NotFound) as caught:
            registry.get_tenant(bad)
        assert caught.value.code == "tenant_not_found"
    assert counting.calls["read_tenant"] == 0


def test_tenants_are_listed_in_id_order(registry):
    for tenant_id in ("zeta", "acme", "mid"):
        registry.create_tenant(tenant_id, with_key=False)
    assert [t.id for t in registry.list_tenants()] == ["acme", "mid", "zeta"]


def test_the_list_leaves_out_a_listed_id_whose_record_is_gone(registry, fake_redis, keyspace):
    registry.create_tenant("acme", with_key=False)
    fake_redis.sadd(keyspace.tenants, "ghost")
    assert [t.id for t in registry.list_tenants()] == ["acme"]


def test_no_tenants_list_as_empty(registry):
    assert registry.list_tenants() == []


# --- updating ----------------------------------------------------------------------------------


def test_renaming_a_tenant_keeps_its_policy_and_creation_time(registry):
    created, _ = registry.create_tenant("acme", name="Acme", policy=Policy(window_size=4))
    renamed = registry.update_tenant("acme", name="Acme Corp")
    assert renamed == Tenant("acme", "Acme Corp", created.created_at, Policy(window_size=4))
    assert registry.get_tenant("acme") == renamed


def test_a_policy_patch_is_merged_into_the_existing_overrides(registry):
    registry.create_tenant("acme", policy=Policy(window_size=4, rate_limit="5/second"))
    updated = registry.update_tenant("acme", policy_patch={"window_size": 8, "max_sessions": 10})
    assert updated.policy == Policy(window_size=8, rate_limit="5/second", max_sessions=10)
    assert updated.name == "acme"


def test_a_policy_field_patched_to_none_returns_to_the_default(registry, defaults, fake_redis, keyspace):
    registry.create_tenant("acme", policy=Policy(window_size=4, rate_limit="5/second"))
    updated = registry.update_tenant("acme", policy_patch={"window_size": None})
    assert updated.policy == Policy(rate_limit="5/second")
    assert updated.to_dict(defaults)["effective_policy"]["window_size"] == defaults.window_size
    assert fake_redis.hget(keyspace.tenant("acme"), "policy") == b'{"rate_limit":"5/second"}'


@pytest.mark.parametrize("name", [None, ""])
def test_an_update_without_a_name_keeps_the_current_name(registry, name):
    registry.create_tenant("acme", name="Acme")
    assert registry.update_tenant("acme", name=name, policy_patch={"window_size": 6}).name == "Acme"


def test_an_update_is_seen_at_once_by_the_process_that_made_it(registry):
    registry.create_tenant("acme")
    assert registry.get_tenant("acme").policy == Policy()  # now cached
    registry.update_tenant("acme", policy_patch={"window_size": 6})
    assert registry.get_tenant("acme").policy == Policy(window_size=6)


def test_an_update_reaches_other_processes_within_one_cache_interval(registry, other_cache, clock, defaults):
    registry.create_tenant("acme")
    changed = defaults.window_size + 1
    assert other_cache.tenant("acme").effective.window_size == defaults.window_size
    registry.update_tenant("acme", policy_patch={"window_size": changed})
    assert other_cache.tenant("acme").effective.window_size == defaults.window_size, "still cached there"
    clock.advance(CACHE_SECONDS)
    assert other_cache.tenant("acme").effective.window_size == changed


@pytest.mark.parametrize(
    "patch", [{"window_size": 1}, {"rate_limit": "often"}, {"max_sessions": 0}, {"max_tenants": 3}]
)
def test_an_invalid_policy_patch_raises_a_validation_error_and_changes_nothing(registry, patch):
    created, _ = registry.create_tenant("acme", policy=Policy(window_size=4))
    with pytest.raises(ValidationError):
        registry.update_tenant("acme", name="Renamed", policy_patch=patch)
    assert registry.get_tenant("acme") == created


def test_updating_an_unknown_tenant_is_not_found_and_creates_nothing(registry, store):
    with pytest.raises(NotFound):
        registry.update_tenant("nobody", name="Somebody")
    assert store.read_tenant("nobody") is None
    assert store.tenant_ids() == []


# --- deleting ----------------------------------------------------------------------------------


def test_deleting_a_tenant_removes_it_and_every_key_of_it(registry, store):
    registry.create_tenant("acme")
    registry.create_key("acme", label="second")
    registry.create_tenant("globex")
    registry.delete_tenant("acme", erase=no_data)
    with pytest.raises(NotFound):
        registry.get_tenant("acme")
    assert store.api_key_ids("acme") == []
    assert [t.id for t in registry.list_tenants()] == ["globex"]


def test_deletion_revokes_credentials_first_and_erases_the_data_twice_one_interval_apart(
    counting, cache, defaults, store
):
    events: list[tuple[Any, ...]] = []
    registry = TenantRegistry(
        counting,
        cache,
        defaults,
        sleep=lambda s: events.append(("sleep", s)),  # type: ignore[arg-type]
    )
    _, key = registry.create_tenant("acme")

    def erase(tenant_id: str) -> int:
        events.append(("erase", tenant_id, store.read_tenant(tenant_id), store.stored_secret(key.key_id)))
        return 5 if len(events) == 1 else 2

    assert registry.delete_tenant("acme", erase=erase) == 7, "both passes are counted"
    assert events == [
        ("erase", "acme", None, None),
        ("sleep", CACHE_SECONDS + 0.05),
        ("erase", "acme", None, None),
    ]


def test_deleting_an_unknown_tenant_is_not_found_and_erases_nothing(registry, sleeps):
    erased: list[str] = []
    with pytest.raises(NotFound):
        registry.delete_tenant("nobody", erase=lambda t: erased.append(t) or 0)
    assert erased == [] and sleeps == []


def test_a_deleted_tenant_id_can_be_used_again_with_a_clean_slate(registry, store):
    _, old_key = registry.create_tenant("acme", name="Old", policy=Policy(window_size=4))
    registry.delete_tenant("acme", erase=no_data)
    tenant, new_key = registry.create_tenant("acme")
    assert (tenant.name, tenant.policy) == ("acme", Policy())
    assert store.api_key_ids("acme") == [new_key.key_id]
    assert store.stored_secret(old_key.key_id) is None


# --- API keys ----------------------------------------------------------------------------------


def test_a_new_key_belongs_to_its_tenant_and_only_its_hash_is_stored(registry, store, fake_redis, keyspace):
    registry.create_tenant("acme", with_key=False)
    new = registry.create_key("acme", label="ci")
    secret = api_keys.parse_key(new.api_key)[1]
    assert store.api_key_owner(new.key_id) == "acme"
    stored = fake_redis.hgetall(keyspace.api_key(new.key_id))
    assert stored[b"hash"] == api_keys.hash_secret(secret).encode()
    assert secret.encode() not in b"".join(stored.values())


def test_keys_cannot_be_created_for_an_unknown_tenant(registry, fake_redis):
    with pytest.raises(NotFound):
        registry.create_key("nobody")
    assert fake_redis.keys("*") == []


def test_listing_keys_shows_their_public_prefix_label_and_times_but_never_the_secret(registry):
    registry.create_tenant("acme", with_key=False)
    first = registry.create_key("acme", label="ci")
    second = registry.create_key("acme")
    listed = registry.list_keys("acme")
    assert [k.key_id for k in listed] == sorted([first.key_id, second.key_id])
    by_id = {k.key_id: k for k in listed}
    ci = by_id[first.key_id]
    assert ci.prefix == f"rk_{first.key_id}_" and first.api_key.startswith(ci.prefix)
    assert (ci.label, ci.last_used_at) == ("ci", None)
    assert ISO_MS_UTC.match(ci.created_at)
    assert by_id[second.key_id].label is None
    for info in listed:
        shown = info.to_dict()
        assert set(shown) == {"key_id", "prefix", "label", "created_at", "last_used_at"}
        assert first.api_key not in shown.values() and second.api_key not in shown.values()


def test_key_info_is_shown_field_for_field():
    info = KeyInfo("abc", "rk_abc_", None, "2026-01-01T00:00:00.000Z", "2026-01-02T00:00:00.000Z")
    assert info.to_dict() == {
        "key_id": "abc",
        "prefix": "rk_abc_",
        "label": None,
        "created_at": "2026-01-01T00:00:00.000Z",
        "last_used_at": "2026-01-02T00:00:00.000Z",
    }


def test_listing_the_keys_of_an_unknown_tenant_is_not_found(registry):
    with pytest.raises(NotFound):
        registry.list_keys("nobody")


def test_a_revoked_key_is_gone_from_the_listing_and_from_redis(registry, store):
    _, first = registry.create_tenant("acme")
    second = registry.create_key("acme")
    registry.revoke_key("acme", first.key_id)
    assert [k.key_id for k in registry.list_keys("acme")] == [second.key_id]
    assert store.stored_secret(first.key_id) is None


def test_revoking_another_tenants_key_answers_like_a_missing_key_and_keeps_it(registry, store):
    registry.create_tenant("acme")
    _, globex_key = registry.create_tenant("globex")
    with pytest.raises(NotFound, match="not found") as caught:
        registry.revoke_key("acme", globex_key.key_id)
    assert caught.value.code == "key_not_found"
    assert store.stored_secret(globex_key.key_id) == StoredSecret(globex_key.secret_hash, "globex")


def test_revoking_an_unknown_key_is_not_found(registry):
    registry.create_tenant("acme")
    with pytest.raises(NotFound) as caught:
        registry.revoke_key("acme", "AAAAAAAAAAAA")
    assert caught.value.code == "key_not_found"


def test_revoking_a_key_twice_is_not_found_the_second_time(registry):
    _, key = registry.create_tenant("acme")
    registry.revoke_key("acme", key.key_id)
    with pytest.raises(NotFound) as caught:
        registry.revoke_key("acme", key.key_id)
    assert caught.value.code == "key_not_found"


def test_revoking_a_key_of_an_unknown_tenant_is_tenant_not_found(registry):
    _, key = registry.create_tenant("acme")
    with pytest.raises(NotFound) as caught:
        registry.revoke_key("nobody", key.key_id)
    assert caught.value.code == "tenant_not_found"


# --- keys racing the tenant's deletion ----------------------------------------------------------


def two_workers(store, defaults, clock) -> tuple[TenantRegistry, TenantRegistry]:
    return tuple(  # type: ignore[return-value]
        TenantRegistry(store, TenancyCache(store, defaults, clock=clock), defaults, sleep=lambda s: None)
        for _ in range(2)
    )


def authenticates(store, defaults, clock, new_key: api_keys.NewKey) -> bool:
    """Whether the key gets in on a worker with a fresh cache."""
    fresh = Authenticator(store, TenancyCache(store, defaults, clock=clock), clock=clock)
    return fresh.authenticate(new_key.api_key) is not None


def test_a_stale_cache_cannot_create_a_key_for_a_deleted_tenant(store, defaults, clock, fake_redis):
    a, b = two_workers(store, defaults, clock)
    b.create_tenant("acme", with_key=False)
    a.get_tenant("acme")  # worker a caches the tenant
    b.delete_tenant("acme", erase=no_data)
    with pytest.raises(NotFound) as caught:
        a.create_key("acme")
    assert caught.value.code == "tenant_not_found"
    assert fake_redis.keys("*") == [], "no key record and no key set is left behind"
    with pytest.raises(NotFound):
        a.get_tenant("acme")  # the stale entry is gone too


def test_a_key_refused_for_a_deleted_tenant_does_not_get_in_once_the_id_is_reused(store, defaults, clock):
    a, b = two_workers(store, defaults, clock)
    b.create_tenant("acme", with_key=False)
    a.get_tenant("acme")
    b.delete_tenant("acme", erase=no_data)
    with pytest.raises(NotFound):
        a.create_key("acme")
    _, new_key = b.create_tenant("acme")
    assert store.api_key_ids("acme") == [new_key.key_id]
    assert authenticates(store, defaults, clock, new_key)


def test_a_tenant_deleted_while_its_key_is_being_written_leaves_no_key(
    store, defaults, clock, fake_redis, monkeypatch
):
    """The deletion runs between the key's write and the store's check of the tenant."""
    a, b = two_workers(store, defaults, clock)
    b.create_tenant("acme", with_key=False)
    real_check = store.tenant_exists
    deleted: list[int] = []

    def deleted_meanwhile(tenant_id: str) -> bool:
        if not deleted:
            deleted.append(b.delete_tenant(tenant_id, erase=no_data))
        return real_check(tenant_id)

    monkeypatch.setattr(store, "tenant_exists", deleted_meanwhile)
    with pytest.raises(NotFound):
        a.create_key("acme")
    assert deleted == [0]
    assert fake_redis.keys("*") == []


def test_a_tenant_deleted_right_after_its_key_was_checked_takes_the_key_along(
    store, defaults, clock, monkeypatch
):
    """The deletion runs just after the store found the tenant's record: the key was
    handed out, and must still not get in as whoever reuses the id. (Checking before
    writing would lose here: the key would be written after the deletion was done.)"""
    a, b = two_workers(store, defaults, clock)
    b.create_tenant("acme", with_key=False)
    real_check = store.tenant_exists
    deleted: list[int] = []

    def deleted_right_after(tenant_id: str) -> bool:
        exists = real_check(tenant_id)
        if not deleted:
            deleted.append(b.delete_tenant(tenant_id, erase=no_data))
        return exists

    monkeypatch.setattr(store, "tenant_exists", deleted_right_after)
    handed_out = a.create_key("acme")
    monkeypatch.undo()
    assert deleted == [0]
    assert store.stored_secret(handed_out.key_id) is None
    b.create_tenant("acme", with_key=False)
    assert store.api_key_ids("acme") == []
    assert not authenticates(store, defaults, clock, handed_out)


def test_a_key_created_while_its_tenant_is_being_deleted_does_not_outlive_it(
    store, defaults, clock, fake_redis, monkeypatch
):
    """The key is created after the deletion read the tenant's key ids and before it
    removed the record: it was handed out, so the deletion must still remove it, or it
    would get in as whoever reuses the id."""
    a, b = two_workers(store, defaults, clock)
    b.create_tenant("acme", with_key=False)
    real_read = store.api_key_ids
    created: list[api_keys.NewKey] = []

    def created_meanwhile(tenant_id: str) -> list[str]:
        key_ids = real_read(tenant_id)
        if not created:
            created.append(a.create_key(tenant_id))  # the record still exists: it succeeds
        return key_ids

    monkeypatch.setattr(store, "api_key_ids", created_meanwhile)
    b.delete_tenant("acme", erase=no_data)
    monkeypatch.undo()
    assert len(created) == 1
    assert fake_redis.keys("*") == []
    b.create_tenant("acme", with_key=False)
    assert not authenticates(store, defaults, clock, created[0])


# --- two processes -----------------------------------------------------------------------------


def test_an_operator_reads_what_another_process_just_wrote(registry, store, defaults, clock):
    registry.create_tenant("acme")
    other = TenantRegistry(store, TenancyCache(store, defaults, clock=clock), defaults)
    assert other.get_tenant("acme").policy == Policy()  # now in the other process's cache
    registry.update_tenant("acme", policy_patch={"window_size": 4})
    # Within the cache's lifetime (the clock has not moved), yet the stored policy.
    assert other.get_tenant("acme").policy == Policy(window_size=4)
    assert [t.policy for t in other.list_tenants()] == [Policy(window_size=4)]


def test_a_patch_applies_to_the_stored_policy_not_a_cached_one(registry, store, defaults, clock):
    registry.create_tenant("acme")
    other = TenantRegistry(store, TenancyCache(store, defaults, clock=clock), defaults)
    other.get_tenant("acme")
    registry.update_tenant("acme", policy_patch={"window_size": 4})
    other.update_tenant("acme", policy_patch={"rate_limit": "5/second"})
    assert registry.get_tenant("acme").policy == Policy(window_size=4, rate_limit="5/second")
