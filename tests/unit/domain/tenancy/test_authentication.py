"""Authentication: a presented API key becomes the principal of its tenant, or nothing."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from app.domain.tenancy import api_keys, authentication
from app.domain.tenancy.authentication import LAST_USED_EVERY_SECONDS, Authenticator, Principal
from app.domain.tenancy.policy import Policy

from .conftest import CACHE_SECONDS


@pytest.fixture
def other_authenticator(store, other_cache, clock) -> Authenticator:
    """The authenticator of another worker process, with its own cache."""
    return Authenticator(store, other_cache, clock=clock)


@pytest.fixture
def used_at(monkeypatch) -> list[str]:
    """Make each last-used timestamp distinct and predictable; lists the ones handed out."""
    handed_out: list[str] = []
    stamps = (f"2026-03-01T00:00:{n:02d}.000Z" for n in itertools.count())

    def fake_now() -> str:
        handed_out.append(next(stamps))
        return handed_out[-1]

    monkeypatch.setattr(authentication, "utc_now_iso", fake_now)
    return handed_out


def last_used(store, tenant_id: str, key_id: str) -> str | None:
    return {r.key_id: r.last_used_at for r in store.api_keys(tenant_id)}[key_id]


def with_secret(api_key: str, secret: str) -> str:
    key_id, _ = api_keys.parse_key(api_key)
    return f"rk_{key_id}_{secret}"


# --- who a key is -------------------------------------------------------------------------------


def test_a_valid_key_authenticates_as_its_tenant_under_the_tenants_effective_policy(
    registry, authenticator, defaults
):
    _, key = registry.create_tenant("acme", policy=Policy(window_size=4))
    principal = authenticator.authenticate(key.api_key)
    assert principal == Principal("acme", key.key_id, defaults.resolve(Policy(window_size=4)))


def test_each_key_authenticates_as_the_tenant_it_was_issued_for(registry, authenticator):
    _, acme = registry.create_tenant("acme")
    _, globex = registry.create_tenant("globex")
    second_acme = registry.create_key("acme")
    assert authenticator.authenticate(acme.api_key).tenant_id == "acme"
    assert authenticator.authenticate(globex.api_key).tenant_id == "globex"
    assert authenticator.authenticate(second_acme.api_key).key_id == second_acme.key_id


@pytest.mark.parametrize("presented", ["", "Bearer x", "rk_short", "sk_" + "a" * 56, "rk_" + "a" * 80])
def test_a_malformed_key_is_refused_without_asking_redis(authenticator, counting, presented):
    assert authenticator.authenticate(presented) is None
    assert sum(counting.calls.values()) == 0


def test_a_well_formed_key_nobody_issued_is_refused(registry, authenticator):
    registry.create_tenant("acme")
    assert authenticator.authenticate(api_keys.generate_key().api_key) is None


def test_a_known_key_id_with_the_wrong_secret_is_refused(registry, authenticator, store):
    _, key = registry.create_tenant("acme")
    _, secret = api_keys.parse_key(key.api_key)
    wrong = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    assert authenticator.authenticate(with_secret(key.api_key, wrong)) is None
    assert last_used(store, "acme", key.key_id) is None, "a failed attempt is not a use"


def test_the_secret_of_one_key_does_not_open_another_key_id(registry, authenticator):
    _, acme = registry.create_tenant("acme")
    _, globex = registry.create_tenant("globex")
    _, globex_secret = api_keys.parse_key(globex.api_key)
    assert authenticator.authenticate(with_secret(acme.api_key, globex_secret)) is None


def test_a_key_whose_tenant_record_is_missing_is_refused(
    registry, authenticator, fake_redis, keyspace, clock
):
    _, key = registry.create_tenant("acme")
    fake_redis.delete(keyspace.tenant("acme"))
    clock.advance(CACHE_SECONDS)  # creating the key cached the tenant
    assert authenticator.authenticate(key.api_key) is None


# --- revocation and deletion -------------------------------------------------------------------------


def test_a_revoked_key_stops_authenticating_at_once_in_the_process_that_revoked_it(registry, authenticator):
    _, key = registry.create_tenant("acme")
    assert authenticator.authenticate(key.api_key) is not None  # cached now
    registry.revoke_key("acme", key.key_id)
    assert authenticator.authenticate(key.api_key) is None


def test_a_revoked_key_no_longer_authenticates_after_the_cache_interval(registry, other_authenticator, clock):
    _, key = registry.create_tenant("acme")
    assert other_authenticator.authenticate(key.api_key) is not None
    registry.revoke_key("acme", key.key_id)
    clock.advance(CACHE_SECONDS - 0.01)
    assert other_authenticator.authenticate(key.api_key) is not None, "another worker's cache lags"
    clock.advance(0.01)
    assert other_authenticator.authenticate(key.api_key) is None


def test_a_key_revoked_elsewhere_is_not_brought_back_by_recording_its_use(
    registry, other_authenticator, store, other_cache, clock, fake_redis, keyspace
):
    _, key = registry.create_tenant("acme")
    other_authenticator.authenticate(key.api_key)  # caches the key in the other worker
    registry.revoke_key("acme", key.key_id)
    unthrottled = Authenticator(store, other_cache, clock=clock)  # will record the use
    assert unthrottled.authenticate(key.api_key) is not None, "the stale cache still admits it"
    assert not fake_redis.exists(keyspace.api_key(key.key_id))


def test_the_keys_of_a_deleted_tenant_stop_authenticating_at_once(registry, authenticator):
    _, first = registry.create_tenant("acme")
    second = registry.create_key("acme")
    assert authenticator.authenticate(first.api_key) is not None
    assert authenticator.authenticate(second.api_key) is not None
    registry.delete_tenant("acme", erase=lambda tenant_id: 0)
    assert authenticator.authenticate(first.api_key) is None
    assert authenticator.authenticate(second.api_key) is None


def test_the_keys_of_a_deleted_tenant_stop_authenticating_elsewhere_after_the_interval(
    registry, other_authenticator, clock
):
    _, key = registry.create_tenant("acme")
    assert other_authenticator.authenticate(key.api_key) is not None
    registry.delete_tenant("acme", erase=lambda tenant_id: 0)
    clock.advance(CACHE_SECONDS)
    assert other_authenticator.authenticate(key.api_key) is None


def test_a_policy_change_applies_to_the_next_request_of_the_process_that_made_it(registry, authenticator):
    _, key = registry.create_tenant("acme")
    authenticator.authenticate(key.api_key)
    registry.update_tenant("acme", policy_patch={"max_sessions": 3})
    assert authenticator.authenticate(key.api_key).policy.max_sessions == 3


# --- last used ------------------------------------------------------------------------------------


def test_a_successful_authentication_records_when_the_key_was_last_used(
    registry, authenticator, store, used_at
):
    _, key = registry.create_tenant("acme")
    assert last_used(store, "acme", key.key_id) is None
    authenticator.authenticate(key.api_key)
    assert last_used(store, "acme", key.key_id) == used_at[0]


def test_last_used_is_written_at_most_once_a_minute_per_key(
    registry, authenticator, store, counting, clock, used_at
):
    _, key = registry.create_tenant("acme")
    authenticator.authenticate(key.api_key)
    clock.advance(LAST_USED_EVERY_SECONDS - 1)
    authenticator.authenticate(key.api_key)
    assert counting.calls["touch_api_key"] == 1
    assert last_used(store, "acme", key.key_id) == used_at[0]
    clock.advance(1)
    authenticator.authenticate(key.api_key)
    assert counting.calls["touch_api_key"] == 2
    assert last_used(store, "acme", key.key_id) == used_at[1]


def test_the_last_used_throttle_is_kept_per_key(registry, authenticator, counting, store, used_at):
    _, first = registry.create_tenant("acme")
    second = registry.create_key("acme")
    authenticator.authenticate(first.api_key)
    authenticator.authenticate(second.api_key)
    assert counting.calls["touch_api_key"] == 2
    assert last_used(store, "acme", first.key_id) == used_at[0]
    assert last_used(store, "acme", second.key_id) == used_at[1]


def test_refused_keys_record_no_use(registry, authenticator, counting):
    _, key = registry.create_tenant("acme")
    _, secret = api_keys.parse_key(key.api_key)
    authenticator.authenticate(with_secret(key.api_key, secret[::-1]))
    authenticator.authenticate(api_keys.generate_key().api_key)
    assert counting.calls["touch_api_key"] == 0


# --- the cache on the hot path -----------------------------------------------------------------------


def test_repeated_authentications_ask_redis_once_per_cache_interval(registry, authenticator, counting, clock):
    _, key = registry.create_tenant("acme")
    clock.advance(CACHE_SECONDS)  # forget what creating the tenant cached
    counting.calls.clear()
    for _ in range(5):
        assert authenticator.authenticate(key.api_key) is not None
    assert (counting.calls["stored_secret"], counting.calls["read_tenant"]) == (1, 1)
    clock.advance(CACHE_SECONDS)
    authenticator.authenticate(key.api_key)
    assert (counting.calls["stored_secret"], counting.calls["read_tenant"]) == (2, 2)


def test_repeated_unknown_keys_cost_redis_one_lookup_per_interval(authenticator, counting):
    unknown = api_keys.generate_key().api_key
    for _ in range(5):
        assert authenticator.authenticate(unknown) is None
    assert counting.calls["stored_secret"] == 1
    assert counting.calls["read_tenant"] == 0, "no tenant is looked up for an unknown key"


# --- acting without a key -----------------------------------------------------------------------------


def test_a_tenant_acting_without_a_key_gets_a_principal_with_no_key_id(registry, authenticator, defaults):
    registry.create_tenant("open", with_key=False, policy=Policy(window_size=5))
    assert authenticator.principal_for("open") == Principal(
        "open", None, defaults.resolve(Policy(window_size=5))
    )


def test_an_unknown_tenant_has_no_principal(authenticator):
    assert authenticator.principal_for("nobody") is None


def test_a_principal_cannot_be_altered(registry, authenticator):
    _, key = registry.create_tenant("acme")
    principal = authenticator.authenticate(key.api_key)
    with pytest.raises(dataclasses.FrozenInstanceError):
        principal.tenant_id = "globex"  # type: ignore[misc]
