"""MotorHead's clients work unchanged: LangChain's call pattern, the /motorhead and
/v1/motorhead prefixes, x-metal-api-key, and the odd session ids they use."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.conftest import ADMIN


def url(session: str, tail: str = "memory") -> str:
    """Clients percent-encode the id in the path, as any HTTP client must."""
    return f"/sessions/{quote(session, safe='')}/{tail}"


def langchain_headers(tenant):
    # LangChain always sends this content type; hosted mode adds the x-metal headers.
    return {"Content-Type": "application/json", "x-metal-api-key": tenant.key, "x-metal-client-id": "ignored"}


def test_langchain_call_pattern(client, tenant):
    """init() GETs and reverses, save_context() POSTs a Human/AI pair, delete_session()."""
    session = "2023-05-01T12:00:00.000Z"
    headers = langchain_headers(tenant)
    for turn in range(3):
        body = {"messages": [{"role": "Human", "content": f"q{turn}"}, {"role": "AI", "content": f"a{turn}"}]}
        assert client.post(f"/sessions/{session}/memory", json=body, headers=headers).status_code == 200
    data = client.get(f"/sessions/{session}/memory", headers=headers).json
    data = data.get("data", data)
    history = [(m["role"], m["content"]) for m in reversed(data["messages"])]
    assert history == [
        ("Human", "q0"),
        ("AI", "a0"),
        ("Human", "q1"),
        ("AI", "a1"),
        ("Human", "q2"),
        ("AI", "a2"),
    ]
    context = data.get("context") or "NONE"
    assert context == "NONE"  # LangChain's own default when no summary exists
    assert client.delete(f"/sessions/{session}/memory", headers=headers).status_code == 200
    assert client.get(f"/sessions/{session}/memory", headers=headers).json["messages"] == []


@pytest.mark.parametrize("prefix", ["/motorhead", "/v1/motorhead"])
def test_prefixed_routes_serve_the_same_data(client, tenant, prefix):
    body = {"messages": [{"role": "Human", "content": "hi"}]}
    posted = client.post(f"{prefix}/sessions/s1/memory", json=body, headers=tenant.headers)
    assert posted.status_code == 200
    root = client.get("/sessions/s1/memory", headers=tenant.headers).json
    prefixed = client.get(f"{prefix}/sessions/s1/memory", headers=tenant.headers).json
    listed = client.get(f"{prefix}/sessions", headers=tenant.headers).json
    current = client.get(f"{prefix}/keys/current", headers=tenant.headers).json
    if prefix == "/v1/motorhead":
        # The hosted API wrapped every body as {"data": ...}; Flowise reads data.data.messages.
        assert posted.json == {"data": {"status": "Ok", "message_ids": [1]}}
        assert prefixed == {"data": root} and listed == {"data": ["s1"]}
        assert current == {"data": {"tenant_id": "acme", "key_id": tenant.key_id}}
    else:
        assert prefixed == root and listed == ["s1"]
        assert current == {"tenant_id": "acme", "key_id": tenant.key_id}
    assert client.get(f"{prefix}/sessions/s1/messages/1", headers=tenant.headers).status_code == 200


def test_errors_under_v1_are_not_wrapped(client, tenant):
    response = client.get("/v1/motorhead/sessions/s1/messages/9", headers=tenant.headers)
    assert response.status_code == 404 and response.json["error"]["code"] == "message_not_found"


def test_keys_current_answers_for_n8n_credential_check(client, tenant):
    response = client.get("/keys/current", headers={"x-metal-api-key": tenant.key, "x-metal-client-id": "c"})
    assert response.status_code == 200
    assert response.json == {"tenant_id": "acme", "key_id": tenant.key_id}


ODD_IDS = [
    "2023-05-01T12:00:00.000Z",
    "a:b",
    "a%3Ab",
    "a%253Ab",
    "{tag}",
    "}{",
    "star*and?question",
    "with space",
    "café-☕",
    "日本語のセッション",
    "x" * 256,
    "é" * 128,  # 256 bytes of UTF-8
    # '/' arrives as %2F, decoded by WSGI before routing: still one whole id.
    "user:42/chat",
    "/leading",
    "trailing/",
    "a//b",
    "x/memory",
    "y/messages/1",
]


def test_odd_session_ids_round_trip_and_never_collide(client, tenant, redis_client):
    for index, session in enumerate(ODD_IDS):
        body = {"messages": [{"role": "Human", "content": f"content {index}"}]}
        response = client.post(url(session), json=body, headers=tenant.headers)
        assert response.status_code == 200, session
    for index, session in enumerate(ODD_IDS):
        messages = client.get(url(session), headers=tenant.headers).json["messages"]
        assert [m["content"] for m in messages] == [f"content {index}"], session
        assert client.get(url(session, "messages/1"), headers=tenant.headers).status_code == 200
    listed = client.get("/sessions?size=100", headers=tenant.headers).json
    assert sorted(listed) == sorted(ODD_IDS)
    # Every key of every session stays inside its own hash tag.
    for key in redis_client.scan_iter(match="rc:{acme:*"):
        text = key.decode()
        tag = text[text.index("{") + 1 : text.index("}")]
        assert "{" not in tag and text.count("}") == 1, text
    for session in ODD_IDS:
        assert client.delete(url(session), headers=tenant.headers).status_code == 200
    assert [k for k in redis_client.scan_iter(match="rc:{acme:*")] == []


INVALID_IDS = ["x" * 257, "é" * 129, "tab\there", "line\nbreak", "nul\x00", "bell\x07", "del\x7f", "c1\x85"]


@pytest.mark.parametrize("session", INVALID_IDS)
def test_invalid_session_ids_are_a_400(client, tenant, session):
    body = {"messages": [{"role": "Human", "content": "x"}]}
    for response in (
        client.post(url(session), json=body, headers=tenant.headers),
        client.get(url(session), headers=tenant.headers),
        client.delete(url(session), headers=tenant.headers),
    ):
        assert response.status_code == 400, session
        assert response.json["error"]["code"] == "invalid_session_id"


def test_health_routes_are_public(client):
    now = client.get("/")
    assert now.status_code == 200 and isinstance(now.json["now"], int) and now.json["now"] > 1.7e12
    assert client.get("/healthz").json == {"status": "ok"}
    assert client.get("/readyz").json == {"status": "ready"}


def test_admin_token_is_not_a_tenant_key(client):
    response = client.get("/sessions", headers=ADMIN)
    assert response.status_code == 401


def langchain_python_init(client, base: str, session: str, headers: dict) -> tuple[list, str | None]:
    """What LangChain Python's ``MotorheadMemory.init()`` does with the GET answer."""
    body = client.get(f"{base}/sessions/{quote(session, safe='')}/memory", headers=headers).json
    data = body.get("data", body)
    messages = reversed(data.get("messages", []))
    history = [("ai" if m["role"] == "AI" else "human", m["content"]) for m in messages]
    context = data.get("context", "NONE")
    return history, context if context and context != "NONE" else None


def save_context(client, base: str, session: str, headers: dict, question: str, answer: str):
    body = {"messages": [{"role": "Human", "content": question}, {"role": "AI", "content": answer}]}
    return client.post(f"{base}/sessions/{quote(session, safe='')}/memory", json=body, headers=headers)


def test_self_hosted_langchain_works_unchanged_in_drop_in_mode(make_app):
    """A self-hosted LangChain client sends no auth header at all, and DELETE no header
    whatsoever; with RECOLLECT_OPEN_TENANT it works as against MotorHead."""
    client = make_app(open_tenant="legacy").test_client()
    only_json = {"Content-Type": "application/json"}
    assert client.get("/sessions/chat-1/memory", headers=only_json).json["messages"] == []
    for turn in range(2):
        response = save_context(client, "", "chat-1", only_json, f"q{turn}", f"a{turn}")
        assert response.status_code == 200
    history, context = langchain_python_init(client, "", "chat-1", only_json)
    assert history == [("human", "q0"), ("ai", "a0"), ("human", "q1"), ("ai", "a1")]
    assert context is None
    assert client.delete("/sessions/chat-1/memory").status_code == 200
    assert langchain_python_init(client, "", "chat-1", only_json) == ([], None)


def test_hosted_clients_read_the_wrapped_answers(client, tenant):
    """LangChain (hosted URL), LangChain JS and Flowise against ``/v1/motorhead``."""
    base = "/v1/motorhead"
    headers = langchain_headers(tenant)
    posted = save_context(client, base, "2024-01-01T00:00:00.000Z", headers, "hello", "hi there")
    assert posted.status_code == 200 and posted.json["data"]["status"] == "Ok"
    history, _ = langchain_python_init(client, base, "2024-01-01T00:00:00.000Z", headers)
    assert history == [("human", "hello"), ("ai", "hi there")]
    raw = client.get(f"{base}{url('2024-01-01T00:00:00.000Z')}", headers=headers).json
    js_data = raw.get("data") or raw  # LangChain JS: json?.data || json
    assert [m["role"] for m in reversed(js_data["messages"])] == ["Human", "AI"]
    assert [m["content"] for m in raw["data"]["messages"]] == ["hi there", "hello"]  # Flowise
    assert client.get(f"{base}/sessions", headers=headers).json == {"data": ["2024-01-01T00:00:00.000Z"]}
    assert client.delete(f"{base}{url('2024-01-01T00:00:00.000Z')}", headers=headers).json == {
        "data": {"status": "Ok"}
    }


@pytest.mark.parametrize("prefix", ["", "/motorhead", "/v1/motorhead"])
def test_odd_ids_reach_the_same_session_under_every_prefix(client, tenant, prefix):
    session = "user:42/2024-05-01T12:00:00.000Z"
    client.post(url(session), json={"messages": [{"role": "Human", "content": "x"}]}, headers=tenant.headers)
    body = client.get(f"{prefix}{url(session)}", headers=tenant.headers).json
    body = body.get("data", body)
    assert [m["content"] for m in body["messages"]] == ["x"]


def test_public_routes_ignore_credentials_entirely(client):
    bogus = {"Authorization": "Bearer nonsense", "x-metal-api-key": "other"}
    for path in ("/", "/healthz", "/readyz"):
        assert client.get(path, headers=bogus).status_code == 200, path
