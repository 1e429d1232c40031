"""The archive: with long-term memory on, folded messages stay reachable — one by one, in
the paged history — and the invariant gains a clause: every summarized message is also in
the archive, exactly once. With it off, folding drops them (MotorHead's behaviour)."""

from __future__ import annotations

import pytest

from tests.api.test_summarization import memory, post, wait_until
from tests.conftest import TenantHandle


def folded(client, tenant: TenantHandle, session: str) -> bool:
    body = memory(client, tenant, session)
    return body["context"] is not None and body["pending_summary"] == 0


def history(client, tenant: TenantHandle, session: str, **params) -> dict:
    response = client.get(f"/sessions/{session}/messages", query_string=params, headers=tenant.headers)
    assert response.status_code == 200, response.json
    return response.json


@pytest.fixture
def folding_client(make_app):
    return make_app(window_size=4, sweep_interval_seconds=0.05).test_client()


def test_folded_messages_move_to_the_archive_exactly_once(folding_client, tenant, redis_client):
    post(folding_client, tenant, "s1", *(f"m{i}" for i in range(1, 11)))
    assert wait_until(lambda: folded(folding_client, tenant, "s1"))
    window_ids = [m["id"] for m in memory(folding_client, tenant, "s1")["messages"]]
    archived = redis_client.zrange("rc:{acme:s1}:a", 0, -1, withscores=True)
    archived_ids = [int(score) for _, score in archived]
    assert sorted(archived_ids + window_ids) == list(range(1, 11))
    assert len(set(archived_ids)) == len(archived_ids) and not set(archived_ids) & set(window_ids)


def test_a_folded_message_is_still_read_by_id(folding_client, tenant):
    post(folding_client, tenant, "s1", *(f"m{i}" for i in range(1, 11)))
    assert wait_until(lambda: folded(folding_client, tenant, "s1"))
    response = folding_client.get("/sessions/s1/messages/1", headers=tenant.headers)
    assert response.status_code == 200
    assert response.json["content"] == "m1" and response.json["id"] == 1 and response.json["role"] == "Human"


def test_deleting_an_archived_message_removes_it_for_good(folding_client, tenant):
    post(folding_client, tenant, "s1", *(f"m{i}" for i in range(1, 11)))
    assert wait_until(lambda: folded(folding_client, tenant, "s1"))
    assert folding_client.delete("/sessions/s1/messages/2", headers=tenant.headers).status_code == 200
    assert folding_client.get("/sessions/s1/messages/2", headers=tenant.headers).status_code == 404
    assert folding_client.delete("/sessions/s1/messages/2", headers=tenant.headers).status_code == 404
    ids = [m["id"] for m in history(folding_client, tenant, "s1", limit=100)["messages"]]
    assert 2 not in ids and len(ids) == 9


def test_the_history_pages_backwards_through_window_and_archive(folding_client, tenant):
    post(folding_client, tenant, "s1", *(f"m{i}" for i in range(1, 12)))
    assert wait_until(lambda: folded(folding_client, tenant, "s1"))
    seen: list[int] = []
    before = None
    pages = 0
    while True:
        params = {"limit": 3} | ({"before": before} if before is not None else {})
        page = history(folding_client, tenant, "s1", **params)
        seen += [m["id"] for m in page["messages"]]
        pages += 1
        before = page["next_before"]
        if before is None:
            break
    assert seen == list(range(11, 0, -1))
    assert pages == 4
    first = history(folding_client, tenant, "s1", limit=2)["messages"][0]
    assert first["content"] == "m11" and set(first) >= {"id", "role", "content", "created_at", "token_count"}


def test_the_history_of_an_unknown_session_is_empty(client, tenant):
    assert history(client, tenant, "nobody") == {"messages": [], "next_before": None}


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 101}, {"before": 0}, {"limit": "x"}])
def test_bad_history_parameters_are_a_400(client, tenant, params):
    response = client.get("/sessions/s1/messages", query_string=params, headers=tenant.headers)
    assert response.status_code == 400 and response.json["error"]["code"] == "invalid_parameter"


def test_with_long_term_memory_off_folded_messages_are_dropped(make_app, make_tenant):
    tenant = make_tenant("acme", long_term_memory=False)
    client = make_app(window_size=4, sweep_interval_seconds=0.05).test_client()
    post(client, tenant, "s1", *(f"m{i}" for i in range(1, 11)))
    assert wait_until(lambda: folded(client, tenant, "s1"))
    assert client.get("/sessions/s1/messages/1", headers=tenant.headers).status_code == 404
    ids = [m["id"] for m in history(client, tenant, "s1")["messages"]]
    assert ids == [m["id"] for m in memory(client, tenant, "s1")["messages"]]
    assert memory(client, tenant, "s1")["pending_index"] == 0


def test_the_archive_shares_the_session_ttl_and_is_erased_with_it(make_app, make_tenant, redis_client):
    tenant = make_tenant("acme", session_ttl_seconds=600)
    client = make_app(window_size=4, sweep_interval_seconds=0.05).test_client()
    post(client, tenant, "s1", *(f"m{i}" for i in range(1, 11)))
    assert wait_until(lambda: folded(client, tenant, "s1"))
    assert 0 < redis_client.ttl("rc:{acme:s1}:a") <= 600
    assert client.delete("/sessions/s1/memory", headers=tenant.headers).status_code == 200
    assert not redis_client.exists("rc:{acme:s1}:a")
    assert client.get("/sessions/s1/messages/1", headers=tenant.headers).status_code == 404


def test_tool_call_fields_are_stored_and_returned(client, tenant):
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "weather", "arguments": '{"city":"Oslo"}'},
    }
    body = {
        "messages": [
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "content": "12 C", "tool_call_id": "call_1", "name": "weather"},
        ]
    }
    assert client.post("/sessions/s1/memory", json=body, headers=tenant.headers).status_code == 200
    newest_first = memory(client, tenant, "s1")["messages"]
    tool, assistant = newest_first
    assert assistant["tool_calls"] == [call] and assistant["content"] == ""
    assert tool["tool_call_id"] == "call_1" and tool["name"] == "weather" and tool["content"] == "12 C"
    single = client.get(f"/sessions/s1/messages/{assistant['id']}", headers=tenant.headers).json
    assert single["tool_calls"] == [call]


@pytest.mark.parametrize(
    "message",
    [
        {"role": "assistant", "content": None},
        {"role": "assistant", "content": "x", "tool_calls": [{"id": "c", "function": {}}]},
        {"role": "assistant", "content": "x", "tool_calls": "nope"},
        {"role": "tool", "content": "x", "tool_call_id": ""},
    ],
)
def test_malformed_tool_fields_are_a_422(client, tenant, message):
    response = client.post("/sessions/s1/memory", json={"messages": [message]}, headers=tenant.headers)
    assert response.status_code == 422 and response.json["error"]["code"] == "invalid_field"
