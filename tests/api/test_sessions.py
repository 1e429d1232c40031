"""GET /sessions: MotorHead's bare array, least recently written first, paged."""

from __future__ import annotations

import time

import pytest


def write(client, tenant, session):
    response = client.post(
        f"/sessions/{session}/memory",
        json={"messages": [{"role": "Human", "content": "x"}]},
        headers=tenant.headers,
    )
    assert response.status_code == 200
    time.sleep(0.002)  # distinct millisecond scores


def test_sessions_are_listed_by_last_write_most_recent_last(client, tenant):
    for session in ("a", "b", "c"):
        write(client, tenant, session)
    write(client, tenant, "a")
    response = client.get("/sessions", headers=tenant.headers)
    assert response.status_code == 200 and response.json == ["b", "c", "a"]


def test_paging(client, tenant):
    for i in range(5):
        write(client, tenant, f"s{i}")
    assert client.get("/sessions?page=1&size=2", headers=tenant.headers).json == ["s0", "s1"]
    assert client.get("/sessions?page=3&size=2", headers=tenant.headers).json == ["s4"]
    assert client.get("/sessions?page=4&size=2", headers=tenant.headers).json == []
    assert len(client.get("/sessions?size=100", headers=tenant.headers).json) == 5


@pytest.mark.parametrize("query", ["size=101", "size=0", "page=0", "page=-1", "page=abc", "size=1.5"])
def test_invalid_paging_is_a_400(client, tenant, query):
    response = client.get(f"/sessions?{query}", headers=tenant.headers)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_parameter"


def test_default_page_is_the_first_ten(client, tenant):
    for i in range(12):
        write(client, tenant, f"s{i:02}")
    assert client.get("/sessions", headers=tenant.headers).json == [f"s{i:02}" for i in range(10)]
    assert client.get("/sessions?page=2", headers=tenant.headers).json == ["s10", "s11"]


def test_a_deleted_session_leaves_the_listing(client, tenant):
    for session in ("a", "b"):
        write(client, tenant, session)
    client.delete("/sessions/a/memory", headers=tenant.headers)
    assert client.get("/sessions", headers=tenant.headers).json == ["b"]


def test_invalid_paging_answers_in_the_error_shape(client, tenant):
    response = client.get("/sessions?size=500", headers=tenant.headers | {"X-Request-ID": "paging-1"})
    assert response.status_code == 400 and response.mimetype == "application/json"
    assert set(response.json) == {"error"}
    error = response.json["error"]
    assert set(error) == {"code", "message"} and "size" in error["message"]
    assert response.headers["X-Request-ID"] == "paging-1"
