"""The operator API (api.md §5)."""

from __future__ import annotations

import hashlib
import re

from tests.conftest import ADMIN, TenantHandle


def test_no_admin_token_configured_means_no_admin_api(make_app):
    client = make_app(admin_token=None).test_client()
    response = client.get("/admin/tenants", headers=ADMIN)
    assert response.status_code == 404 and response.json["error"]["code"] == "not_found"
    for method, path in (
        ("post", "/admin/tenants"),
        ("get", "/admin/tenants/acme"),
        ("delete", "/admin/tenants/acme"),
        ("post", "/admin/tenants/acme/keys"),
    ):
        for headers in (ADMIN, {}):
            assert getattr(client, method)(path, headers=headers).status_code == 404, (method, path)


def test_wrong_admin_token_is_401(client, tenant):
    assert client.get("/admin/tenants", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/admin/tenants").status_code == 401
    # A tenant key is not an admin token.
    assert client.get("/admin/tenants", headers=tenant.headers).status_code == 401


def test_create_tenant_with_policy_and_show_it(client):
    response = client.post(
        "/admin/tenants",
        json={"id": "acme", "name": "Acme Corp", "window_size": 20, "rate_limit": "10/second"},
        headers=ADMIN,
    )
    assert response.status_code == 201
    body = response.json
    assert body["api_key"].startswith(f"rk_{body['key_id']}_")
    tenant = body["tenant"]
    assert tenant["id"] == "acme" and tenant["name"] == "Acme Corp"
    assert tenant["policy"] == {"window_size": 20, "rate_limit": "10/second"}
    assert tenant["effective_policy"]["window_size"] == 20
    assert tenant["effective_policy"]["session_ttl_seconds"] == 0  # the default
    assert client.get("/admin/tenants/acme", headers=ADMIN).json["tenant"] == tenant
    assert [t["id"] for t in client.get("/admin/tenants", headers=ADMIN).json["tenants"]] == ["acme"]


def test_create_tenant_errors(client, tenant):
    duplicate = client.post("/admin/tenants", json={"id": "acme"}, headers=ADMIN)
    assert duplicate.status_code == 409 and duplicate.json["error"]["code"] == "tenant_exists"
    for bad in (
        {"id": "Bad Id"},
        {"id": ""},
        {"id": "a:b"},
        {"id": "x", "color": "red"},
        {"id": "x", "rate_limit": "lots"},
        {"id": "x", "window_size": 1},
        {"name": "no id"},
    ):
        response = client.post("/admin/tenants", json=bad, headers=ADMIN)
        assert response.status_code == 422, bad
        assert response.json["error"]["code"] == "invalid_field"
    assert client.get("/admin/tenants/nope", headers=ADMIN).status_code == 404


def test_a_tenant_id_with_a_trailing_newline_is_refused_not_a_second_tenant(client, tenant):
    response = client.post("/admin/tenants", json={"id": "acme\n"}, headers=ADMIN)
    assert response.status_code == 422 and response.json["error"]["code"] == "invalid_field"
    assert client.post("/admin/tenants", json={"id": "globex\n"}, headers=ADMIN).status_code == 422
    assert [t["id"] for t in client.get("/admin/tenants", headers=ADMIN).json["tenants"]] == ["acme"]
    assert client.get("/admin/tenants/acme%0A", headers=ADMIN).status_code == 404
    assert client.post("/admin/tenants/acme%0A/keys", headers=ADMIN).status_code == 404


def test_patch_policy_and_return_a_field_to_its_default(client, tenant):
    patched = client.patch("/admin/tenants/acme", json={"window_size": 30, "name": "ACME"}, headers=ADMIN)
    assert patched.status_code == 200
    assert patched.json["tenant"]["policy"] == {"window_size": 30}
    assert patched.json["tenant"]["name"] == "ACME"
    reset = client.patch("/admin/tenants/acme", json={"window_size": None}, headers=ADMIN).json["tenant"]
    assert reset["policy"] == {} and reset["effective_policy"]["window_size"] == 12
    assert client.patch("/admin/tenants/acme", json={"rate_limit": "x"}, headers=ADMIN).status_code == 422
    assert client.patch("/admin/tenants/nope", json={}, headers=ADMIN).status_code == 404


def test_policy_change_reaches_requests(client, tenant):
    client.patch("/admin/tenants/acme", json={"max_message_bytes": 100}, headers=ADMIN)
    big = {"messages": [{"role": "Human", "content": "x" * 101}]}
    import time

    time.sleep(0.25)  # the auth cache of the test app lives 0.2 s
    assert client.post("/sessions/s/memory", json=big, headers=tenant.headers).status_code == 413


def test_keys_create_list_revoke(client, tenant, other_tenant):
    created = client.post("/admin/tenants/acme/keys", json={"label": "ci"}, headers=ADMIN)
    assert created.status_code == 201
    new_key = created.json["api_key"]
    listing = client.get("/admin/tenants/acme/keys", headers=ADMIN)
    keys = listing.json["keys"]
    assert sorted(k["key_id"] for k in keys) == sorted([tenant.key_id, created.json["key_id"]])
    assert {k["label"] for k in keys} == {None, "ci"}
    assert all(k["prefix"] == f"rk_{k['key_id']}_" for k in keys)
    raw = listing.get_data(as_text=True)
    for secret in (new_key.split("_", 2)[2], tenant.key.split("_", 2)[2]):
        assert secret not in raw
    # Another tenant's key, or an unknown one, cannot be revoked through acme.
    assert client.delete(f"/admin/tenants/acme/keys/{other_tenant.key_id}", headers=ADMIN).status_code == 404
    assert client.delete("/admin/tenants/acme/keys/unknown", headers=ADMIN).status_code == 404
    assert (
        client.delete(f"/admin/tenants/acme/keys/{created.json['key_id']}", headers=ADMIN).status_code == 200
    )
    assert [k["key_id"] for k in client.get("/admin/tenants/acme/keys", headers=ADMIN).json["keys"]] == [
        tenant.key_id
    ]


def test_deleting_a_tenant_erases_all_its_data(client, tenant, other_tenant, redis_client):
    for owner in (tenant, other_tenant):
        for session in ("s1", "s2", "a:b"):
            client.post(
                f"/sessions/{session}/memory",
                json={"messages": [{"role": "Human", "content": "x"}]},
                headers=owner.headers | {"Idempotency-Key": "k"},
            )
    response = client.delete("/admin/tenants/acme", headers=ADMIN)
    assert response.status_code == 200 and response.json["status"] == "Ok"
    leftovers = [k.decode() for k in redis_client.scan_iter() if b"acme" in k]
    assert leftovers == []
    assert client.get("/sessions", headers=tenant.headers).status_code == 401
    assert client.get("/admin/tenants/acme", headers=ADMIN).status_code == 404
    assert sorted(client.get("/sessions", headers=other_tenant.headers).json) == ["a:b", "s1", "s2"]
    # The id can be used again, starting empty.
    again = client.post("/admin/tenants", json={"id": "acme"}, headers=ADMIN)
    assert again.status_code == 201, again.json
    again = again.json
    fresh = TenantHandle("acme", again["api_key"], again["key_id"])
    assert client.get("/sessions", headers=fresh.headers).json == []


def test_a_key_can_be_created_without_a_body(client, tenant):
    """api.md §5 gives ``POST /admin/tenants/{id}/keys`` no body: a bare POST works."""
    response = client.post("/admin/tenants/acme/keys", headers=ADMIN)
    assert response.status_code == 201, response.json
    assert response.json["api_key"].startswith(f"rk_{response.json['key_id']}_")
    headers = {"Authorization": f"Bearer {response.json['api_key']}"}
    assert client.get("/keys/current", headers=headers).json["key_id"] == response.json["key_id"]


def test_key_listing_shows_neither_secret_nor_hash(client, tenant):
    created = client.post("/admin/tenants/acme/keys", json={"label": "second"}, headers=ADMIN).json
    raw = client.get("/admin/tenants/acme/keys", headers=ADMIN).get_data(as_text=True)
    for api_key in (tenant.key, created["api_key"]):
        secret = api_key.split("_", 2)[2]
        assert api_key not in raw and secret not in raw
        assert hashlib.sha256(secret.encode()).hexdigest() not in raw
    assert "hash" not in raw


def test_every_key_is_stored_as_the_sha256_of_its_secret(client, tenant, redis_client):
    created = client.post("/admin/tenants/acme/keys", headers=ADMIN).json
    for key_id, api_key in ((tenant.key_id, tenant.key), (created["key_id"], created["api_key"])):
        record = redis_client.hgetall(f"rc:key:{key_id}")
        secret = api_key.split("_", 2)[2]
        assert re.fullmatch(rb"[0-9a-f]{64}", record[b"hash"])
        assert record[b"hash"].decode() == hashlib.sha256(secret.encode()).hexdigest()
        assert not any(secret.encode() in value for value in record.values())


def test_revoking_through_the_wrong_tenant_leaves_the_key_working(client, tenant, other_tenant):
    assert client.delete(f"/admin/tenants/acme/keys/{other_tenant.key_id}", headers=ADMIN).status_code == 404
    assert client.get("/sessions", headers=other_tenant.headers).status_code == 200
    assert client.delete(f"/admin/tenants/acme/keys/{tenant.key_id}", headers=ADMIN).status_code == 200
    assert client.get("/sessions", headers=tenant.headers).status_code == 401


def test_admin_errors_on_unknown_tenants_and_fields(client, tenant):
    assert client.patch("/admin/tenants/acme", json={"colour": "red"}, headers=ADMIN).status_code == 422
    assert client.patch("/admin/tenants/acme", json={"id": "other"}, headers=ADMIN).status_code == 422
    for method, path in (
        ("delete", "/admin/tenants/nope"),
        ("get", "/admin/tenants/nope/keys"),
        ("post", "/admin/tenants/nope/keys"),
        ("delete", f"/admin/tenants/nope/keys/{tenant.key_id}"),
    ):
        response = getattr(client, method)(path, headers=ADMIN)
        assert response.status_code == 404, (method, path)
        assert response.json["error"]["code"] == "tenant_not_found"


def test_deleting_a_tenant_leaves_other_tenants_messages_intact(client, tenant, other_tenant):
    body = {"messages": [{"role": "Human", "content": "kept"}], "context": "globex summary"}
    client.post("/sessions/shared-id/memory", json=body, headers=other_tenant.headers)
    client.post("/sessions/shared-id/memory", json=body, headers=tenant.headers)
    client.delete("/admin/tenants/acme", headers=ADMIN)
    kept = client.get("/sessions/shared-id/memory", headers=other_tenant.headers).json
    assert [m["content"] for m in kept["messages"]] == ["kept"] and kept["context"] == "globex summary"
    assert client.get("/sessions/shared-id/messages/1", headers=other_tenant.headers).status_code == 200
