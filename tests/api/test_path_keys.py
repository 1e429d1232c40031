"""Path-scoped keys (api.md §9): every tenant route, on every prefix, also under
``/k/<api_key>``, checked exactly like a bearer key, and the key never written anywhere."""

from __future__ import annotations

import logging
import time

import pytest
from prometheus_client import REGISTRY, generate_latest

from tests.conftest import ADMIN

PREFIXES = ("", "/motorhead", "/v1/motorhead")
BODY = {"messages": [{"role": "Human", "content": "hello from a keyless client"}]}


def unwrap(prefix: str, body: object) -> object:
    return body["data"] if prefix == "/v1/motorhead" else body  # type: ignore[index]


@pytest.mark.parametrize("prefix", PREFIXES)
def test_every_tenant_route_answers_under_the_key_in_the_path(client, tenant, prefix):
    base = f"/k/{tenant.key}{prefix}"
    appended = client.post(f"{base}/sessions/chat/memory", json=BODY)
    assert appended.status_code == 200, appended.get_data()
    assert unwrap(prefix, appended.json)["message_ids"] == [1]

    memory = client.get(f"{base}/sessions/chat/memory")
    assert [m["content"] for m in unwrap(prefix, memory.json)["messages"]] == ["hello from a keyless client"]
    assert client.get(f"{base}/sessions/chat/messages").status_code == 200
    assert unwrap(prefix, client.get(f"{base}/sessions/chat/messages/1").json)["id"] == 1
    assert unwrap(prefix, client.get(f"{base}/sessions").json) == ["chat"]
    assert unwrap(prefix, client.get(f"{base}/keys/current").json)["tenant_id"] == tenant.id
    assert client.get(f"{base}/usage").status_code == 200
    assert client.get(f"{base}/sessions/chat/context?model=gpt-4o&max_tokens=500").status_code == 200
    assert client.post(f"{base}/search", json={"text": "keyless"}).status_code == 200
    assert client.post(f"{base}/sessions/chat/retrieval", json={"text": "keyless"}).status_code == 200
    assert client.delete(f"{base}/sessions/chat/messages/1").status_code == 200
    assert client.delete(f"{base}/sessions/chat/memory").status_code == 200
    # The same data as the header sees it: one tenant, whichever way the key travels.
    assert client.get(f"{prefix}/sessions", headers=tenant.headers).status_code == 200


def test_session_ids_with_slashes_and_a_k_segment_route_as_usual(client, tenant):
    for session_id in ("a%2Fb", "k", "k%2Fx"):
        response = client.post(f"/k/{tenant.key}/sessions/{session_id}/memory", json=BODY)
        assert response.status_code == 200, (session_id, response.get_data())
    ids = set(client.get("/sessions", headers=tenant.headers).json)
    assert ids == {"a/b", "k", "k/x"}


def test_tenants_stay_apart_and_a_path_key_acts_only_as_its_own_tenant(client, tenant, other_tenant):
    client.post(f"/k/{tenant.key}/sessions/private/memory", json=BODY)
    theirs = client.get(f"/k/{other_tenant.key}/sessions/private/memory")
    assert theirs.status_code == 200 and theirs.json["messages"] == []
    assert client.get(f"/k/{other_tenant.key}/sessions").json == []


def test_a_bad_path_key_gets_the_same_401_as_a_bad_bearer_key(client, tenant):
    forged = tenant.key[:-1] + ("x" if tenant.key[-1] != "x" else "y")
    in_path = client.get(f"/k/{forged}/sessions")
    in_header = client.get("/sessions", headers={"Authorization": f"Bearer {forged}"})
    assert in_path.status_code == in_header.status_code == 401
    assert in_path.get_data() == in_header.get_data()
    assert forged not in in_path.get_data(as_text=True)


def test_a_path_key_and_a_different_header_key_are_refused(client, tenant, other_tenant):
    response = client.get(f"/k/{tenant.key}/sessions", headers=other_tenant.headers)
    assert response.status_code == 401
    assert response.json["error"]["message"] == "conflicting credentials"
    assert client.get(f"/k/{tenant.key}/sessions", headers=tenant.headers).status_code == 200


def test_a_revoked_path_key_is_refused_within_a_second(client, tenant):
    assert client.get(f"/k/{tenant.key}/sessions").status_code == 200
    assert client.delete(f"/admin/tenants/{tenant.id}/keys/{tenant.key_id}", headers=ADMIN).status_code == 200
    deadline = time.monotonic() + 1.0
    while client.get(f"/k/{tenant.key}/sessions").status_code == 200:
        assert time.monotonic() < deadline, "revoked key still accepted after 1 s"
        time.sleep(0.05)
    assert client.get(f"/k/{tenant.key}/sessions").status_code == 401


def test_failed_path_keys_count_towards_the_failed_authentication_limit(client, tenant):
    address = {"REMOTE_ADDR": "203.0.113.50"}
    wrong = f"rk_{tenant.key_id}_{'x' * 43}"
    statuses = [client.get(f"/k/{wrong}/sessions", environ_base=address).status_code for _ in range(21)]
    assert statuses[:20] == [401] * 20 and statuses[20] == 429


def test_a_path_key_opens_no_admin_public_or_unknown_route(client, tenant):
    for path in ("/admin/tenants", "/healthz", "/", "/openapi.json", "/metrics", "/nope", ""):
        response = client.get(f"/k/{tenant.key}{path}", headers=ADMIN)
        assert response.status_code == 404, (path, response.get_data())
        assert tenant.key not in response.get_data(as_text=True)
    assert client.get("/k//sessions").status_code == 404


def test_path_keys_can_be_turned_off(make_app, tenant):
    client = make_app(path_keys=False).test_client()
    response = client.get(f"/k/{tenant.key}/sessions")
    assert response.status_code == 404
    assert tenant.key not in response.get_data(as_text=True)
    assert client.get("/sessions", headers=tenant.headers).status_code == 200


def test_a_path_key_reaches_no_log_line_metric_or_document(make_app, tenant, caplog):
    caplog.set_level(logging.DEBUG)
    client = make_app().test_client()
    wrong = f"rk_{tenant.key_id}_{'q' * 43}"
    for key in (tenant.key, wrong):
        for prefix in PREFIXES:
            client.post(f"/k/{key}{prefix}/sessions/s/memory", json=BODY)
            client.get(f"/k/{key}{prefix}/sessions/s/memory")
            client.get(f"/k/{key}{prefix}/sessions/s/messages/999")
            client.post(
                f"/k/{key}{prefix}/sessions/s/memory", data="{not json", content_type="application/json"
            )
            client.get(f"/k/{key}{prefix}/admin/tenants")
    written = "\n".join(record.getMessage() for record in caplog.records) + str(
        [record.__dict__ for record in caplog.records]
    )
    metrics = generate_latest(REGISTRY).decode()
    document = client.get("/openapi.json").get_data(as_text=True)
    for text in (written, metrics, document):
        assert tenant.key not in text and wrong not in text
        assert tenant.key.split("_")[-1] not in text
    assert "route=/sessions/<sid:session_id>/memory" in written
