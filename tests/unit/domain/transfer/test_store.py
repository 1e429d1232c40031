"""The transfer store's keys and staging: staged keys live in the session's slot, expire on
their own, and go with a discard, a refused commit, or the tenant's erasure."""

from __future__ import annotations

from redis.crc import key_slot

from app.domain.memory.stored_format import NewMessage
from app.domain.transfer.store import STAGING_SECONDS

from .conftest import TENANT


def test_staged_keys_share_the_sessions_slot(keyspace):
    session = keyspace.session(TENANT, "a:b{c}")
    staging = keyspace.staging(TENANT, "a:b{c}", "n0")
    slots = {key_slot(k.encode()) for k in (*session.all, staging.window, staging.archive)}
    assert len(slots) == 1
    assert staging.window != staging.archive and "{acme:a%3Ab%7Bc%7D}" in staging.window


def test_staged_elements_expire_unless_committed(transfer_store, fake_redis):
    staging = transfer_store.staging(TENANT, "s1", "n0")
    transfer_store.stage(staging, window=[b'{"id":2,"r":"H"}'], archive=[(1, b'{"id":1,"r":"H"}')])
    assert 0 < fake_redis.ttl(staging.window) <= STAGING_SECONDS
    assert 0 < fake_redis.ttl(staging.archive) <= STAGING_SECONDS
    transfer_store.discard(staging)
    assert fake_redis.exists(staging.window, staging.archive) == 0


def test_spilling_moves_the_oldest_window_elements_to_the_archive(transfer_store, fake_redis):
    staging = transfer_store.staging(TENANT, "s1", "n0")
    transfer_store.stage(staging, window=[b'{"id":%d,"r":"H"}' % i for i in range(1, 8)], archive=[])
    transfer_store.spill(staging, 5, batch=2)
    assert fake_redis.lrange(staging.window, 0, -1) == [b'{"id":6,"r":"H"}', b'{"id":7,"r":"H"}']
    assert [int(s) for _, s in fake_redis.zrange(staging.archive, 0, -1, withscores=True)] == [1, 2, 3, 4, 5]


def test_erasing_a_tenant_erases_its_staged_imports(transfer_store, sessions, fake_redis):
    staging = transfer_store.staging(TENANT, "s1", "n0")
    transfer_store.stage(staging, window=[b'{"id":1,"r":"H"}'], archive=[])
    sessions.append("globex", "s1", [NewMessage("Human", "theirs", None, 1)])
    sessions.erase_tenant_data(TENANT)
    assert fake_redis.exists(staging.window) == 0
    assert fake_redis.exists(*sessions_keys(fake_redis, "globex")) > 0


def sessions_keys(fake_redis, tenant: str) -> list[bytes]:
    return list(fake_redis.scan_iter(match=f"rc:{{{tenant}:*"))


def test_the_header_of_a_missing_session_is_none(transfer_store):
    assert transfer_store.header(TENANT, "nobody") is None
    assert transfer_store.exists(TENANT, "nobody") is False
