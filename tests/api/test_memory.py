"""POST/GET/DELETE /sessions/{id}/memory and single messages, as api.md §2 specifies."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import redis

from tests.conftest import free_port


def stalled_summarizer_app(make_app, **overrides):
    """An app whose LLM is unreachable: overflowing messages stay in Redis, unsummarized,
    so what GET shows depends on the window policy alone (no background fold races)."""
    return make_app(
        summarizer="openai",
        openai_api_key="k",
        openai_base_url=f"http://127.0.0.1:{free_port()}/v1",
        llm_max_retries=0,
        summary_retry_base_seconds=60,
        **overrides,
    )


def post(client, tenant, session, messages, **extra):
    headers = tenant.headers | extra.pop("headers", {})
    return client.post(f"/sessions/{session}/memory", json={"messages": messages, **extra}, headers=headers)


def pair(i: int) -> list[dict]:
    return [{"role": "Human", "content": f"question {i}"}, {"role": "AI", "content": f"answer {i}"}]


def test_append_assigns_increasing_ids_and_get_returns_newest_first(client, tenant):
    first = post(client, tenant, "s1", pair(0))
    second = post(client, tenant, "s1", pair(1))
    assert first.status_code == second.status_code == 200
    assert first.json == {"status": "Ok", "message_ids": [1, 2]}
    assert second.json["message_ids"] == [3, 4]
    body = client.get("/sessions/s1/memory", headers=tenant.headers).json
    assert [m["content"] for m in body["messages"]] == ["answer 1", "question 1", "answer 0", "question 0"]
    assert [m["id"] for m in body["messages"]] == [4, 3, 2, 1]
    assert all(m["created_at"].endswith("Z") for m in body["messages"])
    assert body["context"] is None and body["tokens"] == 0 and body["pending_summary"] == 0


def test_any_role_string_and_metadata_are_stored_unchanged(client, tenant):
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "tool: search", "content": '{"hits": 3}', "metadata": {"source": "web", "n": [1, 2]}},
        {"role": "Human", "content": ""},
    ]
    assert post(client, tenant, "s1", messages).status_code == 200
    got = client.get("/sessions/s1/memory", headers=tenant.headers).json["messages"]
    assert [(m["role"], m["content"]) for m in reversed(got)] == [(m["role"], m["content"]) for m in messages]
    assert got[1]["metadata"] == {"source": "web", "n": [1, 2]}
    assert "metadata" not in got[0]


def test_context_replaces_the_summary_and_empty_messages_are_valid(client, tenant):
    assert post(client, tenant, "s1", [], context="seeded summary").json == {
        "status": "Ok",
        "message_ids": [],
    }
    body = client.get("/sessions/s1/memory", headers=tenant.headers).json
    assert body == {
        "messages": [],
        "context": "seeded summary",
        "tokens": 0,
        "pending_summary": 0,
        "pending_index": 0,
    }
    post(client, tenant, "s1", pair(0), context="replaced")
    assert client.get("/sessions/s1/memory", headers=tenant.headers).json["context"] == "replaced"


def test_missing_session_reads_as_empty(client, tenant):
    response = client.get("/sessions/never-written/memory", headers=tenant.headers)
    assert response.status_code == 200
    assert response.json == {
        "messages": [],
        "context": None,
        "tokens": 0,
        "pending_summary": 0,
        "pending_index": 0,
    }


def test_get_returns_only_the_newest_window_size_messages(make_app, make_tenant):
    # A failing summarizer keeps the backlog in place: GET still shows window_size.
    app = stalled_summarizer_app(make_app, window_size=4)
    client = app.test_client()
    tenant = make_tenant()
    for i in range(4):
        post(client, tenant, "s1", pair(i))
    body = client.get("/sessions/s1/memory", headers=tenant.headers).json
    assert [m["id"] for m in body["messages"]] == [8, 7, 6, 5]
    assert body["pending_summary"] == 4 and body["context"] is None


def test_delete_removes_everything_of_the_session(client, tenant, redis_client):
    post(client, tenant, "s1", pair(0), context="summary", headers={"Idempotency-Key": "k"})
    post(client, tenant, "s2", pair(0))
    response = client.delete("/sessions/s1/memory", headers=tenant.headers)
    assert response.status_code == 200 and response.json == {"status": "Ok"}
    assert client.get("/sessions/s1/memory", headers=tenant.headers).json["messages"] == []
    assert client.get("/sessions", headers=tenant.headers).json == ["s2"]
    assert [k for k in redis_client.scan_iter(match="*acme:s1*")] == []
    # Deleting again, or a session that never existed, is still 200.
    assert client.delete("/sessions/s1/memory", headers=tenant.headers).status_code == 200
    # A new session under the same id starts from scratch.
    assert post(client, tenant, "s1", pair(9)).json["message_ids"] == [1, 2]


def test_single_message_read_and_delete(client, tenant):
    post(client, tenant, "s1", pair(0) + pair(1))
    post(client, tenant, "s2", pair(0))
    message = client.get("/sessions/s1/messages/2", headers=tenant.headers)
    assert message.status_code == 200
    assert message.json["id"] == 2 and message.json["content"] == "answer 0"
    assert client.delete("/sessions/s1/messages/2", headers=tenant.headers).json == {"status": "Ok"}
    gone = client.get("/sessions/s1/messages/2", headers=tenant.headers)
    assert gone.status_code == 404 and gone.json["error"]["code"] == "message_not_found"
    assert client.delete("/sessions/s1/messages/2", headers=tenant.headers).status_code == 404
    assert client.get("/sessions/s1/messages/99", headers=tenant.headers).status_code == 404
    ids = [m["id"] for m in client.get("/sessions/s1/memory", headers=tenant.headers).json["messages"]]
    assert ids == [4, 3, 1]
    # s2's message 2 is untouched by s1's delete.
    assert client.get("/sessions/s2/messages/2", headers=tenant.headers).status_code == 200


def test_idempotency_key_replays_the_first_answer(client, tenant):
    key = {"Idempotency-Key": "retry-123"}
    first = post(client, tenant, "s1", pair(0), headers=key)
    retry = post(client, tenant, "s1", pair(0), headers=key)
    assert retry.status_code == 200 and retry.json == first.json
    assert retry.headers.get("Idempotent-Replayed") == "true"
    assert len(client.get("/sessions/s1/memory", headers=tenant.headers).json["messages"]) == 2
    # Another key appends; the same key on another session is independent.
    assert post(client, tenant, "s1", pair(1), headers={"Idempotency-Key": "other"}).json["message_ids"] == [
        3,
        4,
    ]
    assert post(client, tenant, "s2", pair(0), headers=key).json["message_ids"] == [1, 2]
    assert len(client.get("/sessions/s1/memory", headers=tenant.headers).json["messages"]) == 4


def test_an_idempotency_key_reused_with_another_body_is_refused_and_writes_nothing(client, tenant):
    key = {"Idempotency-Key": "retry-456"}
    first = post(client, tenant, "s1", pair(0), headers=key)
    for different in (
        {"messages": pair(1)},  # other messages
        {"messages": pair(0), "context": "a summary"},  # the same messages, plus a summary
        {"messages": [dict(m, metadata={"x": 1}) for m in pair(0)]},  # other metadata
    ):
        refused = client.post("/sessions/s1/memory", json=different, headers=tenant.headers | key)
        assert refused.status_code == 422, refused.get_data()
        assert refused.json["error"]["code"] == "idempotency_key_reused"
    # The same body (keys in any order) is still a replay of the first answer.
    reordered = [{"content": m["content"], "role": m["role"]} for m in pair(0)]
    replay = client.post("/sessions/s1/memory", json={"messages": reordered}, headers=tenant.headers | key)
    assert replay.status_code == 200 and replay.json == first.json
    memory = client.get("/sessions/s1/memory", headers=tenant.headers).json
    assert len(memory["messages"]) == 2 and memory["context"] is None


def test_idempotency_records_are_per_tenant(client, tenant, other_tenant):
    key = {"Idempotency-Key": "shared"}
    post(client, tenant, "s1", pair(0), headers=key)
    response = post(client, other_tenant, "s1", pair(5), headers=key)
    assert response.json["message_ids"] == [1, 2] and "Idempotent-Replayed" not in response.headers
    assert (
        client.get("/sessions/s1/memory", headers=other_tenant.headers).json["messages"][0]["content"]
        == "answer 5"
    )


def test_ids_and_timestamps_are_assigned_by_the_server(client, tenant):
    """A client cannot choose a message's id or created_at: both are the server's."""
    before = datetime.now(UTC) - timedelta(seconds=5)
    forged = [{"role": "Human", "content": "hi", "id": 999, "created_at": "1999-01-01T00:00:00.000Z"}]
    assert post(client, tenant, "s1", forged).json["message_ids"] == [1]
    (message,) = client.get("/sessions/s1/memory", headers=tenant.headers).json["messages"]
    assert message["id"] == 1
    created = datetime.fromisoformat(message["created_at"].replace("Z", "+00:00"))
    assert before <= created <= datetime.now(UTC) + timedelta(seconds=5)


def test_context_is_null_never_the_literal_none(client, tenant):
    """MotorHead answered "NONE" without a summary; clients must see null instead."""
    reads = [client.get("/sessions/fresh/memory", headers=tenant.headers).json]
    post(client, tenant, "s1", pair(0))
    reads.append(client.get("/sessions/s1/memory", headers=tenant.headers).json)
    post(client, tenant, "s2", [], context="a summary")
    client.delete("/sessions/s2/memory", headers=tenant.headers)
    reads.append(client.get("/sessions/s2/memory", headers=tenant.headers).json)
    for body in reads:
        assert body["context"] is None and body["tokens"] == 0


def test_every_client_role_is_kept_verbatim(client, tenant):
    roles = ["Human", "AI", "user", "assistant", "system", "tool", "function", "Bot 2", "ロール"]
    post(client, tenant, "s1", [{"role": r, "content": r} for r in roles])
    got = client.get("/sessions/s1/memory", headers=tenant.headers).json["messages"]
    assert [m["role"] for m in reversed(got)] == roles


def test_deleting_a_session_that_never_existed_is_ok(client, tenant, redis_client):
    response = client.delete("/sessions/never-written/memory", headers=tenant.headers)
    assert response.status_code == 200 and response.json == {"status": "Ok"}
    assert client.get("/sessions", headers=tenant.headers).json == []
    assert list(redis_client.scan_iter(match="*never-written*")) == []


def test_delete_forgets_idempotency_records_and_the_due_mark(client, tenant, redis_client):
    """After DELETE, a POST with an old Idempotency-Key is a new write, not a replay."""
    key = {"Idempotency-Key": "same-key"}
    post(client, tenant, "s1", pair(0) + pair(1), headers=key)
    redis_client.zadd("rc:due", {"acme:s1": 9e12})  # as if a summarization were pending
    client.delete("/sessions/s1/memory", headers=tenant.headers)
    assert redis_client.zscore("rc:due", "acme:s1") is None
    again = post(client, tenant, "s1", pair(7), headers=key)
    assert again.json["message_ids"] == [1, 2] and "Idempotent-Replayed" not in again.headers
    messages = client.get("/sessions/s1/memory", headers=tenant.headers).json["messages"]
    assert [m["content"] for m in messages] == ["answer 7", "question 7"]


def test_a_message_id_of_another_session_is_not_found(client, tenant):
    """Message ids are per session: s2 has no message 3 even though s1 has."""
    post(client, tenant, "s1", pair(0) + pair(1))
    post(client, tenant, "s2", pair(0))
    assert client.get("/sessions/s2/messages/3", headers=tenant.headers).status_code == 404
    assert client.delete("/sessions/s2/messages/3", headers=tenant.headers).status_code == 404
    assert client.get("/sessions/s1/messages/3", headers=tenant.headers).json["content"] == "question 1"
    assert client.get("/sessions/never/messages/1", headers=tenant.headers).status_code == 404


def test_get_window_follows_the_tenant_policy(make_app, make_tenant):
    """A tenant's own window_size (admin policy) bounds what GET returns."""
    client = stalled_summarizer_app(make_app).test_client()
    tenant = make_tenant("acme", window_size=2)
    post(client, tenant, "s1", pair(0))
    post(client, tenant, "s1", pair(1))
    body = client.get("/sessions/s1/memory", headers=tenant.headers).json
    assert [m["id"] for m in body["messages"]] == [4, 3]
    assert body["context"] is None


def _calls(redis_client, command: str) -> int:
    stats = redis_client.info("commandstats")
    return stats.get(f"cmdstat_{command}", {}).get("calls", 0)


def test_an_append_is_one_round_trip_without_a_script_check(client, tenant, redis_client):
    """redis-py sends SCRIPT EXISTS before any pipeline holding a Script object; the append
    queues its EVALSHA itself so a POST costs no such extra round trip."""
    if isinstance(redis_client, redis.RedisCluster):
        pytest.skip("cluster pipelines refuse EVALSHA: there the script runs on its own (store.py)")
    post(client, tenant, "s", pair(0))
    before = _calls(redis_client, "script|exists")
    for i in range(1, 4):
        assert post(client, tenant, "s", pair(i)).status_code == 200
    assert _calls(redis_client, "script|exists") == before


def test_an_append_survives_redis_forgetting_its_scripts(client, tenant, redis_client):
    """After SCRIPT FLUSH (or a restart) the pipelined EVALSHA meets NOSCRIPT: the append is
    then run on its own, once — nothing lost, nothing counted twice."""
    post(client, tenant, "s", pair(0))
    redis_client.script_flush()
    response = post(client, tenant, "s", pair(1))
    assert response.status_code == 200
    assert response.json["message_ids"] == [3, 4]
    messages = client.get("/sessions/s/memory", headers=tenant.headers).json["messages"]
    assert [m["content"] for m in messages] == ["answer 1", "question 1", "answer 0", "question 0"]
    usage = client.get("/usage", headers=tenant.headers).json
    assert usage["messages"]["total"] == 4


TRICKY = {
    "role": 'user "r"',
    "content": 'text with ,"c":" and ,"n":5 and ,"t":" inside',
    "metadata": {"r": "x", "c": {"n": 1}, "t": [',"r":"'], "n": 2},
}


def test_messages_are_stored_with_short_keys_and_read_with_the_api_names(client, tenant, redis_client):
    assert post(client, tenant, "s", [TRICKY, {"role": "AI", "content": "plain"}]).status_code == 200
    stored = redis_client.lrange("rc:{acme:s}:w", 0, -1)
    assert stored[0].startswith(b'{"id":1,"r":"user \\"r\\"","c":"text with')
    assert b'"role"' not in stored[1] and b'"token_count"' not in stored[1]
    newest, oldest = client.get("/sessions/s/memory", headers=tenant.headers).json["messages"]
    assert (oldest["role"], oldest["content"], oldest["metadata"]) == (
        TRICKY["role"],
        TRICKY["content"],
        TRICKY["metadata"],
    )
    assert set(oldest) == {"id", "role", "content", "created_at", "token_count", "metadata"}
    assert set(newest) == {"id", "role", "content", "created_at", "token_count"}
    assert client.get("/sessions/s/messages/1", headers=tenant.headers).json == oldest
    tokens = oldest["token_count"] + newest["token_count"]
    assert int(redis_client.hget("rc:{acme:s}:m", "wt")) == tokens
    assert client.delete("/sessions/s/messages/1", headers=tenant.headers).status_code == 200
    assert int(redis_client.hget("rc:{acme:s}:m", "wt")) == newest["token_count"]


def test_messages_stored_before_the_short_keys_still_read_delete_and_fold(
    make_app, make_tenant, redis_client
):
    """Elements written with the API's key names (before the short keys) pass through."""
    app = make_app(window_size=2)
    client = app.test_client()
    tenant = make_tenant("acme")
    assert post(client, tenant, "s", [{"role": "Human", "content": "new one"}]).status_code == 200
    legacy = [
        b'{"id":2,"role":"Human","content":"legacy ,\\"r\\":\\" two","created_at":"2026-01-01T00:00:00.000Z",'
        b'"token_count":7,"metadata":{"r":"x","n":1}}',
        b'{"id":3,"role":"AI","content":"legacy three","created_at":"2026-01-01T00:00:01.000Z",'
        b'"token_count":5}',
    ]
    redis_client.rpush("rc:{acme:s}:w", *legacy)
    redis_client.hset("rc:{acme:s}:m", mapping={"next": 3})
    redis_client.hincrby("rc:{acme:s}:m", "wt", 12)
    messages = client.get("/sessions/s/memory", headers=tenant.headers).json["messages"]
    assert [m["content"] for m in messages] == ["legacy three", 'legacy ,"r":" two']
    assert messages[1]["metadata"] == {"r": "x", "n": 1}
    first = client.get("/sessions/s/messages/1", headers=tenant.headers).json
    assert client.get("/sessions/s/messages/3", headers=tenant.headers).json["token_count"] == 5
    assert client.delete("/sessions/s/messages/2", headers=tenant.headers).status_code == 200
    assert int(redis_client.hget("rc:{acme:s}:m", "wt")) == first["token_count"] + 5
    # One more POST overflows the window of 2: the fold reads old and new elements alike.
    newest = post(client, tenant, "s", [{"role": "Human", "content": "newest"}])
    assert newest.status_code == 200

    def folded() -> bool:
        body = client.get("/sessions/s/memory", headers=tenant.headers).json
        return body["context"] is not None and body["pending_summary"] == 0

    deadline = time.monotonic() + 10
    while not folded() and time.monotonic() < deadline:
        time.sleep(0.05)
    body = client.get("/sessions/s/memory", headers=tenant.headers).json
    assert "new one" in body["context"] and "legacy three" in body["context"]
    assert [m["content"] for m in body["messages"]] == ["newest"]
    assert int(redis_client.hget("rc:{acme:s}:m", "wt")) == body["messages"][0]["token_count"]
