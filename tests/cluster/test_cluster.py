"""On a real 3-master Redis Cluster (``RECOLLECT_TEST_REDIS=cluster``; ``make test`` runs
this directory and tests/api that way): each session stays in one slot, sessions spread
over the nodes, and multi-key operations never cross slots."""

from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.skipif(
    os.environ.get("RECOLLECT_TEST_REDIS") != "cluster", reason="needs RECOLLECT_TEST_REDIS=cluster"
)


def test_every_key_of_a_session_is_in_one_slot_and_sessions_spread(client, tenant, redis_client):
    for i in range(40):
        body = {"messages": [{"role": "Human", "content": f"m{i}"}]}
        headers = tenant.headers | {"Idempotency-Key": f"k{i}"}
        assert client.post(f"/sessions/chat:{i}/memory", json=body, headers=headers).status_code == 200
    slots_by_session: dict[str, set[int]] = {}
    for key in redis_client.scan_iter(match="rc:{acme:*"):
        text = key.decode()
        tag = text[text.index("{") + 1 : text.index("}")]
        slots_by_session.setdefault(tag, set()).add(redis_client.keyslot(text))
    assert len(slots_by_session) == 40
    assert all(len(slots) == 1 for slots in slots_by_session.values())
    nodes_with_data = [n for n in redis_client.get_primaries() if redis_client.dbsize(target_nodes=n) > 0]
    assert len(nodes_with_data) >= 2


def test_tenant_wide_keys_share_the_tenant_slot(redis_client, client, tenant):
    client.post(
        "/sessions/s/memory", json={"messages": [{"role": "AI", "content": "x"}]}, headers=tenant.headers
    )
    assert redis_client.keyslot("rc:{acme}:sessions") == redis_client.keyslot("rc:{acme}:usage")


def test_deleting_a_tenant_scans_every_node(client, tenant, redis_client):
    from tests.conftest import ADMIN

    for i in range(30):
        client.post(
            f"/sessions/s{i}/memory",
            json={"messages": [{"role": "AI", "content": "x"}]},
            headers=tenant.headers,
        )
    assert client.delete("/admin/tenants/acme", headers=ADMIN).status_code == 200
    assert [k for k in redis_client.scan_iter() if b"acme" in k] == []
