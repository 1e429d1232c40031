"""Headers on every answer: nothing sniffed, nothing cached, Retry-After only on a refusal."""

from __future__ import annotations

from tests.conftest import ADMIN


def test_every_tenant_and_admin_answer_is_no_store_and_nosniff(client, tenant):
    created = client.post("/admin/tenants/acme/keys", json={}, headers=ADMIN)  # a key shown once
    assert created.status_code == 201
    answers = [
        created,
        client.post(
            "/sessions/s/memory",
            json={"messages": [{"role": "Human", "content": "hi"}]},
            headers=tenant.headers,
        ),
        client.get("/sessions/s/memory", headers=tenant.headers),
        client.get("/sessions/s/memory"),  # 401
        client.get("/admin/tenants", headers=ADMIN),
        client.get("/nope"),  # 404
    ]
    for answer in answers:
        assert answer.headers["X-Content-Type-Options"] == "nosniff", answer.request.path
        assert answer.headers["Cache-Control"] == "no-store", answer.request.path
    assert client.get("/openapi.json").headers["X-Content-Type-Options"] == "nosniff"


def test_retry_after_comes_only_with_a_429_or_a_503(client, make_tenant):
    tenant = make_tenant("tight", rate_limit="3/minute")
    answers = [client.get("/sessions", headers=tenant.headers) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert not any("Retry-After" in a.headers for a in answers[:3])
    assert int(answers[3].headers["Retry-After"]) >= 1
