"""Cross-cutting promises: nothing secret in logs, the embedded store, retrieval's stance."""

from __future__ import annotations

import logging
import time

from app import create_app
from config import load_settings
from tests.conftest import ADMIN, ADMIN_TOKEN

SECRET_CONTENT = "my card number is 4111-1111-1111-1111"


def test_no_key_token_or_message_content_in_any_log_line(make_app, caplog):
    caplog.set_level(logging.DEBUG)
    app = make_app(window_size=4, sweep_interval_seconds=0.05)
    client = app.test_client()
    created = client.post("/admin/tenants", json={"id": "acme"}, headers=ADMIN).json
    key = created["api_key"]
    headers = {"Authorization": f"Bearer {key}"}
    for i in range(6):
        body = {
            "messages": [{"role": "Human", "content": f"{SECRET_CONTENT} #{i}"}],
            "context": "secret summary",
        }
        client.post("/sessions/private-session/memory", json=body, headers=headers)
    client.get("/sessions/private-session/memory", headers=headers)
    client.get("/sessions/private-session/messages/1", headers=headers)
    client.post("/sessions/x/memory", data="{broken", headers=headers, content_type="application/json")
    client.get("/sessions", headers={"Authorization": "Bearer rk_wrong_key"})
    client.get("/admin/tenants", headers={"Authorization": "Bearer wrong-admin-token"})
    client.delete("/sessions/private-session/memory", headers=headers)
    time.sleep(0.3)  # let a fold log what it logs
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "request method=POST" in text  # the request log is on, and was captured
    for secret in (
        key,
        key.split("_", 2)[2],
        ADMIN_TOKEN,
        "wrong-admin-token",
        "rk_wrong_key",
        "4111-1111",
        "secret summary",
        "private-session",
    ):
        assert secret not in text, secret


def test_embedded_store_when_redis_url_is_unset(caplog):
    caplog.set_level(logging.WARNING)
    app = create_app(load_settings(admin_token=ADMIN_TOKEN, window_size=4, sweep_interval_seconds=0.05))
    try:
        assert "embedded in-process store" in caplog.text
        client = app.test_client()
        key = client.post("/admin/tenants", json={"id": "dev"}, headers=ADMIN).json["api_key"]
        headers = {"Authorization": f"Bearer {key}"}
        for i in range(5):
            body = {"messages": [{"role": "Human", "content": f"Point {i}. More."}]}
            assert client.post("/sessions/s/memory", json=body, headers=headers).status_code == 200
        deadline = time.monotonic() + 5
        while client.get("/sessions/s/memory", headers=headers).json["context"] is None:
            assert time.monotonic() < deadline, "the embedded mode summarizes too (extractive)"
            time.sleep(0.05)
        assert client.get("/readyz").status_code == 200
    finally:
        app.extensions["recollect"].shutdown()


def test_retrieval_answers_like_motorhead_with_long_term_memory_off(make_app, make_tenant):
    client = make_app(long_term_memory=False).test_client()
    tenant = make_tenant("acme")  # the configured default applies: off
    response = client.post("/sessions/s/retrieval", json={"text": "find"}, headers=tenant.headers)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "long_term_memory_disabled"
    assert client.post("/sessions/s/retrieval", json={}, headers=tenant.headers).status_code == 422
