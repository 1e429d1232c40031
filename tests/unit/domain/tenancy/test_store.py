"""The Redis side of tenancy: tenant records, the tenant list, API key records and their sets."""

from __future__ import annotations

import pytest

from app.domain.errors import StoreUnavailable
from app.domain.tenancy.store import ApiKeyRecord, StoredSecret, TenancyStore, TenantRecord

from .fakes import unreachable_redis

CREATED = "2026-01-02T03:04:05.678Z"


def record(name: str = "Acme", policy: bytes = b'{"window_size":4}') -> TenantRecord:
    return TenantRecord(name, CREATED, policy)


def add_key(store: TenancyStore, tenant_id: str, key_id: str, *, label: str | None = None) -> None:
    store.add_api_key(tenant_id, key_id, secret_hash=f"hash-of-{key_id}", created_at=CREATED, label=label)


# --- tenants -----------------------------------------------------------------------------------


def test_claiming_a_tenant_id_succeeds_once_and_never_overwrites_the_first_claim(store, fake_redis, keyspace):
    assert store.claim_tenant("acme", CREATED) is True
    assert store.claim_tenant("acme", "2030-01-01T00:00:00.000Z") is False
    assert fake_redis.hget(keyspace.tenant("acme"), "created_at") == CREATED.encode()


def test_an_unknown_tenant_has_no_record(store):
    assert store.read_tenant("nobody") is None


def test_a_written_tenant_reads_back_as_written(store):
    store.write_tenant("acme", record())
    assert store.read_tenant("acme") == record()


def test_a_claimed_but_not_yet_written_tenant_reads_as_nameless_with_no_overrides(store):
    store.claim_tenant("acme", CREATED)
    assert store.read_tenant("acme") == TenantRecord("", CREATED, b"{}")


def test_a_record_without_created_at_does_not_count_as_a_tenant(store, fake_redis, keyspace):
    fake_redis.hset(keyspace.tenant("acme"), mapping={"name": "Acme", "policy": b"{}"})
    assert store.read_tenant("acme") is None


def test_rewriting_a_tenant_replaces_its_name_and_policy(store):
    store.write_tenant("acme", record())
    store.write_tenant("acme", record("Acme Corp", b"{}"))
    assert store.read_tenant("acme") == record("Acme Corp", b"{}")


def test_only_a_listed_write_adds_the_tenant_to_the_tenant_list(store):
    store.write_tenant("zeta", record(), listed=True)
    store.write_tenant("unlisted", record())
    store.write_tenant("alpha", record(), listed=True)
    assert store.tenant_ids() == ["alpha", "zeta"]


def test_a_tenant_exists_from_its_claim_until_its_deletion(store):
    assert store.tenant_exists("acme") is False
    store.claim_tenant("acme", CREATED)
    assert store.tenant_exists("acme") is True
    store.write_tenant("acme", record(), listed=True)
    assert store.tenant_exists("acme") is True
    store.delete_tenant("acme")
    assert store.tenant_exists("acme") is False


def test_a_record_without_created_at_does_not_exist_for_tenant_exists_either(store, fake_redis, keyspace):
    fake_redis.hset(keyspace.tenant("acme"), "name", "Acme")
    assert store.tenant_exists("acme") is False and store.read_tenant("acme") is None


def test_the_tenant_list_is_empty_without_tenants(store):
    assert store.tenant_ids() == []


def test_deleting_a_tenant_removes_its_record_its_keys_and_its_place_in_the_list(store, fake_redis, keyspace):
    store.write_tenant("acme", record(), listed=True)
    add_key(store, "acme", "k2")
    add_key(store, "acme", "k1")
    assert store.delete_tenant("acme") == ["k1", "k2"]
    assert store.read_tenant("acme") is None
    assert store.tenant_ids() == []
    assert store.api_key_ids("acme") == []
    assert store.stored_secret("k1") is None and store.stored_secret("k2") is None
    assert fake_redis.keys("*") == []


def test_deleting_a_tenant_also_removes_a_key_added_after_its_keys_were_read(store, fake_redis, monkeypatch):
    """The key's writer found the record still there (so it handed the key out): the
    deletion's second read, with the record's removal, must find it."""
    store.write_tenant("acme", record(), listed=True)
    add_key(store, "acme", "k1")
    real_read = store.api_key_ids

    def added_meanwhile(tenant_id: str) -> list[str]:
        key_ids = real_read(tenant_id)
        assert store.add_api_key_if_tenant_exists(
            tenant_id, "late", secret_hash="h", created_at=CREATED, label=None
        )
        return key_ids

    monkeypatch.setattr(store, "api_key_ids", added_meanwhile)
    assert store.delete_tenant("acme") == ["k1", "late"]
    assert store.stored_secret("late") is None and store.stored_secret("k1") is None
    assert fake_redis.keys("*") == []


def test_deleting_a_tenant_removes_its_keys_before_its_record(store, fake_redis, keyspace, monkeypatch):
    """Whoever re-creates the id the moment the record is gone finds no old key."""
    store.write_tenant("acme", record(), listed=True)
    add_key(store, "acme", "k1")
    seen: list[tuple[bool, bool]] = []
    real_remove = store._remove_api_keys

    def remove(tenant_id: str, key_ids: list[str]) -> None:
        real_remove(tenant_id, key_ids)
        seen.append((store.tenant_exists(tenant_id), store.stored_secret("k1") is None))

    monkeypatch.setattr(store, "_remove_api_keys", remove)
    store.delete_tenant("acme")
    assert seen[0] == (True, True), "the key was gone while the record still stood"


def test_deleting_a_tenant_leaves_other_tenants_and_their_keys_alone(store):
    for tenant_id in ("acme", "globex"):
        store.write_tenant(tenant_id, record(), listed=True)
        add_key(store, tenant_id, f"{tenant_id}-key")
    store.delete_tenant("acme")
    assert store.tenant_ids() == ["globex"]
    assert store.read_tenant("globex") == record()
    assert store.stored_secret("globex-key") == StoredSecret("hash-of-globex-key", "globex")


def test_deleting_an_unknown_tenant_removes_nothing_and_reports_no_keys(store):
    store.write_tenant("acme", record(), listed=True)
    assert store.delete_tenant("nobody") == []
    assert store.tenant_ids() == ["acme"]


# --- API keys ----------------------------------------------------------------------------------


def test_an_added_key_is_owned_by_its_tenant_and_carries_its_hash(store):
    add_key(store, "acme", "k1", label="ci")
    assert store.api_key_owner("k1") == "acme"
    assert store.stored_secret("k1") == StoredSecret("hash-of-k1", "acme")
    assert store.api_key_ids("acme") == ["k1"]


def test_key_ids_are_listed_sorted_and_per_tenant(store):
    for key_id in ("kc", "ka", "kb"):
        add_key(store, "acme", key_id)
    add_key(store, "globex", "kz")
    assert store.api_key_ids("acme") == ["ka", "kb", "kc"]
    assert store.api_key_ids("globex") == ["kz"]
    assert store.api_key_ids("nobody") == []


def test_key_listings_show_metadata_and_never_the_hash(store):
    add_key(store, "acme", "k1", label="ci")
    add_key(store, "acme", "k2")
    assert store.api_keys("acme") == [
        ApiKeyRecord(key_id="k1", created_at=CREATED, label="ci", last_used_at=None),
        ApiKeyRecord(key_id="k2", created_at=CREATED, label=None, last_used_at=None),
    ]


def test_an_empty_label_is_not_stored(store, fake_redis, keyspace):
    add_key(store, "acme", "k1", label="")
    assert not fake_redis.hexists(keyspace.api_key("k1"), "label")
    assert store.api_keys("acme")[0].label is None


def test_a_listed_key_id_whose_record_is_gone_is_left_out_of_the_listing(store, fake_redis, keyspace):
    add_key(store, "acme", "k1")
    add_key(store, "acme", "k2")
    fake_redis.delete(keyspace.api_key("k1"))
    assert [r.key_id for r in store.api_keys("acme")] == ["k2"]


def test_a_tenant_without_keys_lists_none(store):
    assert store.api_keys("acme") == []


def test_an_unknown_key_has_no_owner_and_no_secret(store):
    assert store.api_key_owner("nope") is None
    assert store.stored_secret("nope") is None


def test_a_key_record_missing_its_hash_or_tenant_yields_no_secret(store, fake_redis, keyspace):
    fake_redis.hset(keyspace.api_key("no-hash"), mapping={"tenant": "acme", "created_at": CREATED})
    fake_redis.hset(keyspace.api_key("no-tenant"), mapping={"hash": "h", "created_at": CREATED})
    fake_redis.hset(keyspace.api_key("empty-hash"), mapping={"tenant": "acme", "hash": ""})
    assert store.stored_secret("no-hash") is None
    assert store.stored_secret("no-tenant") is None
    assert store.stored_secret("empty-hash") is None


def test_deleting_a_key_removes_its_record_and_its_place_in_the_tenants_set(store):
    add_key(store, "acme", "k1")
    add_key(store, "acme", "k2")
    store.delete_api_key("acme", "k1")
    assert store.stored_secret("k1") is None
    assert store.api_key_owner("k1") is None
    assert store.api_key_ids("acme") == ["k2"]
    assert store.stored_secret("k2") == StoredSecret("hash-of-k2", "acme")


def test_a_key_is_added_while_its_tenant_exists(store):
    store.write_tenant("acme", record(), listed=True)
    added = store.add_api_key_if_tenant_exists("acme", "k1", secret_hash="h", created_at=CREATED, label="ci")
    assert added is True
    assert store.stored_secret("k1") == StoredSecret("h", "acme")
    assert store.api_keys("acme") == [ApiKeyRecord("k1", CREATED, "ci", None)]


def test_a_key_for_a_tenant_without_a_record_is_refused_and_leaves_nothing(store, fake_redis):
    assert (
        store.add_api_key_if_tenant_exists("gone", "k1", secret_hash="h", created_at=CREATED, label="x")
        is False
    )
    assert store.stored_secret("k1") is None
    assert store.api_key_ids("gone") == []
    assert fake_redis.keys("*") == []


def test_a_refused_key_leaves_the_other_keys_in_the_set_alone(store):
    add_key(store, "gone", "orphan")  # e.g. written by a key creation that is still checking
    assert (
        store.add_api_key_if_tenant_exists("gone", "k1", secret_hash="h", created_at=CREATED, label=None)
        is False
    )
    assert store.api_key_ids("gone") == ["orphan"]


def test_touching_a_key_records_when_it_was_last_used(store):
    add_key(store, "acme", "k1")
    store.touch_api_key("k1", "2026-02-03T00:00:00.000Z")
    store.touch_api_key("k1", "2026-02-04T00:00:00.000Z")
    assert store.api_keys("acme")[0].last_used_at == "2026-02-04T00:00:00.000Z"


def test_touching_a_revoked_key_does_not_bring_its_record_back(store, fake_redis, keyspace):
    add_key(store, "acme", "k1")
    store.delete_api_key("acme", "k1")
    store.touch_api_key("k1", "2026-02-03T00:00:00.000Z")
    assert not fake_redis.exists(keyspace.api_key("k1"))
    store.touch_api_key("never-existed", "2026-02-03T00:00:00.000Z")
    assert not fake_redis.exists(keyspace.api_key("never-existed"))


def test_touching_still_works_after_redis_forgot_its_scripts(store, fake_redis):
    add_key(store, "acme", "k1")
    store.touch_api_key("k1", "2026-02-03T00:00:00.000Z")
    fake_redis.script_flush()
    store.touch_api_key("k1", "2026-02-05T00:00:00.000Z")
    assert store.api_keys("acme")[0].last_used_at == "2026-02-05T00:00:00.000Z"


# --- outages ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.read_tenant("acme"),
        lambda s: s.claim_tenant("acme", CREATED),
        lambda s: s.write_tenant("acme", record(), listed=True),
        lambda s: s.tenant_ids(),
        lambda s: s.delete_tenant("acme"),
        lambda s: add_key(s, "acme", "k1"),
        lambda s: s.add_api_key_if_tenant_exists(
            "acme", "k1", secret_hash="h", created_at=CREATED, label=None
        ),
        lambda s: s.tenant_exists("acme"),
        lambda s: s.api_keys("acme"),
        lambda s: s.stored_secret("k1"),
        lambda s: s.touch_api_key("k1", CREATED),
    ],
)
def test_a_redis_outage_surfaces_as_store_unavailable(call, keyspace):
    store = TenancyStore(unreachable_redis(), keyspace)
    with pytest.raises(StoreUnavailable) as caught:
        call(store)
    assert caught.value.code == "store_unavailable"
    assert caught.value.cause == "ConnectionError"
