"""Authentication and tenant isolation (api.md §1): tenants never see each other."""

from __future__ import annotations

import time

from tests.conftest import ADMIN

BODY = {"messages": [{"role": "Human", "content": "secret of A"}]}
UNKNOWN_BUT_WELL_FORMED = "rk_" + "A" * 12 + "_" + "b" * 43


def test_missing_key_is_401_with_bearer_challenge(client):
    response = client.get("/sessions/s1/memory")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json == {"error": {"code": "unauthorized", "message": "missing API key"}}


def test_bad_keys_all_get_the_same_answer(client, tenant):
    """No hint about which tenants or key ids exist."""
    forged_secret = tenant.key[:-1] + ("x" if tenant.key[-1] != "x" else "y")
    bodies = set()
    for key in ("nonsense", UNKNOWN_BUT_WELL_FORMED, forged_secret, tenant.key + "x"):
        response = client.get("/sessions", headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 401
        bodies.add(response.get_data())
    assert len(bodies) == 1


def test_bearer_scheme_is_case_insensitive_and_other_schemes_are_refused(client, tenant):
    assert client.get("/sessions", headers={"Authorization": f"bearer {tenant.key}"}).status_code == 200
    assert client.get("/sessions", headers={"Authorization": f"Basic {tenant.key}"}).status_code == 401


def test_two_headers_naming_different_keys_are_refused(client, tenant, other_tenant):
    headers = {"Authorization": f"Bearer {tenant.key}", "x-metal-api-key": other_tenant.key}
    response = client.post("/sessions/s1/memory", json=BODY, headers=headers)
    assert response.status_code == 401 and response.json["error"]["message"] == "conflicting credentials"
    same = {"Authorization": f"Bearer {tenant.key}", "x-metal-api-key": tenant.key}
    assert client.get("/sessions", headers=same).status_code == 200


def test_tenant_b_cannot_read_list_delete_or_detect_tenant_a(client, tenant, other_tenant):
    a, b = tenant.headers, other_tenant.headers
    assert client.post("/sessions/private/memory", json=BODY, headers=a).json["message_ids"] == [1]
    # Reading A's session as B looks exactly like a session that does not exist.
    assert (
        client.get("/sessions/private/memory", headers=b).json
        == client.get("/sessions/nonexistent/memory", headers=b).json
    )
    assert client.get("/sessions", headers=b).json == []
    single = client.get("/sessions/private/messages/1", headers=b)
    assert single.status_code == 404
    assert single.get_data() == client.get("/sessions/nonexistent/messages/1", headers=b).get_data()
    assert client.delete("/sessions/private/messages/1", headers=b).status_code == 404
    assert client.delete("/sessions/private/memory", headers=b).status_code == 200
    for prefix in ("/motorhead", "/v1/motorhead"):
        assert client.get(f"{prefix}/sessions", headers=b).json in ([], {"data": []})
    # B writing the same id creates B's own session; A's is untouched throughout.
    assert client.post(
        "/sessions/private/memory", json={"messages": [{"role": "AI", "content": "B"}]}, headers=b
    ).json["message_ids"] == [1]
    mine = client.get("/sessions/private/memory", headers=a).json["messages"]
    assert [m["content"] for m in mine] == ["secret of A"]
    assert [m["content"] for m in client.get("/sessions/private/memory", headers=b).json["messages"]] == ["B"]
    assert client.get("/sessions", headers=a).json == ["private"]


def test_several_keys_per_tenant_and_revocation_within_a_second(make_app, tenant):
    """Revocation reaches every worker (here: two app instances on one Redis) in ≤ 1 s."""
    first = make_app(auth_cache_seconds=1.0).test_client()
    second = make_app(auth_cache_seconds=1.0).test_client()
    extra = first.post("/admin/tenants/acme/keys", json={"label": "rotation"}, headers=ADMIN).json
    extra_headers = {"Authorization": f"Bearer {extra['api_key']}"}
    for client in (first, second):  # warm both caches with both keys
        assert client.get("/sessions", headers=tenant.headers).status_code == 200
        assert client.get("/sessions", headers=extra_headers).status_code == 200
    revoked_at = time.monotonic()
    assert first.delete(f"/admin/tenants/acme/keys/{tenant.key_id}", headers=ADMIN).status_code == 200
    for client in (first, second):
        while client.get("/sessions", headers=tenant.headers).status_code != 401:
            assert time.monotonic() - revoked_at < 1.5, "revoked key still accepted"
            time.sleep(0.05)
        assert client.get("/sessions", headers=extra_headers).status_code == 200


def test_drop_in_mode_serves_credential_less_requests_as_the_open_tenant(make_app, make_tenant):
    app = make_app(open_tenant="legacy")
    client = app.test_client()
    assert client.post("/sessions/s1/memory", json=BODY).status_code == 200
    assert client.get("/keys/current").json == {"tenant_id": "legacy", "key_id": None}
    assert [m["content"] for m in client.get("/sessions/s1/memory").json["messages"]] == ["secret of A"]
    # A request that carries a key is still authenticated normally.
    acme = make_tenant("acme")
    assert client.get("/sessions", headers=acme.headers).json == []
    assert client.get("/sessions", headers={"Authorization": "Bearer nonsense"}).status_code == 401
    assert client.get("/sessions").json == ["s1"]


def test_without_drop_in_mode_credential_less_requests_are_refused(client):
    assert client.post("/sessions/s1/memory", json=BODY).status_code == 401


def test_keys_are_stored_only_as_sha256(client, tenant, redis_client):
    record = {k.decode(): v.decode() for k, v in redis_client.hgetall(f"rc:key:{tenant.key_id}").items()}
    assert record["tenant"] == "acme"
    assert len(record["hash"]) == 64 and int(record["hash"], 16) >= 0
    secret = tenant.key.split("_", 2)[2]
    for key in redis_client.scan_iter():
        dump = redis_client.dump(key) or b""
        assert secret.encode() not in dump and tenant.key.encode() not in dump


def test_revoked_and_deleted_keys_look_exactly_like_unknown_ones(client, make_tenant):
    """Whether a key once existed, or its tenant did, is not observable."""
    acme, doomed = make_tenant("acme"), make_tenant("doomed")
    spare = client.post("/admin/tenants/acme/keys", json={}, headers=ADMIN).json
    client.delete(f"/admin/tenants/acme/keys/{spare['key_id']}", headers=ADMIN)
    client.delete("/admin/tenants/doomed", headers=ADMIN)
    reference = client.get("/sessions", headers={"Authorization": f"Bearer {UNKNOWN_BUT_WELL_FORMED}"})
    assert reference.status_code == 401
    for headers in (
        {"Authorization": f"Bearer {spare['api_key']}"},
        {"Authorization": f"Bearer {doomed.key}"},
        {"x-metal-api-key": doomed.key},
        {"x-metal-api-key": "garbage", "x-metal-client-id": "acme"},
    ):
        response = client.get("/sessions", headers=headers)
        assert response.status_code == 401, headers
        assert response.get_data() == reference.get_data(), headers
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/sessions", headers=acme.headers).status_code == 200


def test_isolation_holds_under_the_compat_prefixes(client, tenant, other_tenant):
    client.post("/sessions/private/memory", json=BODY, headers=tenant.headers)
    b = other_tenant.headers
    for prefix in ("/motorhead", "/v1/motorhead"):
        body = client.get(f"{prefix}/sessions/private/memory", headers=b).json
        assert body.get("data", body)["messages"] == []
        assert client.get(f"{prefix}/sessions/private/messages/1", headers=b).status_code == 404
        assert client.delete(f"{prefix}/sessions/private/messages/1", headers=b).status_code == 404
    mine = client.get("/sessions/private/memory", headers=tenant.headers).json["messages"]
    assert [m["content"] for m in mine] == ["secret of A"]


def test_the_open_tenant_is_created_on_demand_and_admin_stays_guarded(make_app):
    client = make_app(open_tenant="legacy").test_client()
    assert client.get("/admin/tenants/legacy", headers=ADMIN).status_code == 404
    assert client.get("/sessions").status_code == 200
    assert client.get("/admin/tenants/legacy", headers=ADMIN).status_code == 200
    # Drop-in mode opens the memory API only, never the operator API.
    assert client.get("/admin/tenants").status_code == 401
