"""The sync client against a live server: every tenant method, errors with their codes,
retries that never duplicate an append, and the base URL's path kept."""

from __future__ import annotations

import socket
import time
import uuid

import pytest

from recollect_client import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    Message,
    NotFoundError,
    RateLimitError,
    Recollect,
    ServiceUnavailableError,
    ToolCall,
    ToolFunction,
    ValidationError,
)


def wait_until_indexed(client: Recollect, session_id: str, timeout: float = 10.0) -> None:
    """Search data is written off the request path, normally within a second (api.md §2)."""
    deadline = time.monotonic() + timeout
    while client.get_memory(session_id).pending_index:
        assert time.monotonic() < deadline, "messages were not indexed in time"
        time.sleep(0.05)


def test_append_then_get_memory_returns_the_window_newest_first(client):
    result = client.append(
        "chat",
        [
            Message(role="user", content="Ship on the 14th?", metadata={"channel": "web"}),
            {"role": "assistant", "content": "Yes."},
        ],
    )
    assert result.status == "Ok" and result.message_ids == [1, 2] and result.replayed is False
    memory = client.get_memory("chat")
    assert [(m.id, m.role, m.content) for m in memory.messages] == [
        (2, "assistant", "Yes."),
        (1, "user", "Ship on the 14th?"),
    ]
    assert memory.messages[1].metadata == {"channel": "web"} and memory.messages[0].metadata is None
    assert memory.messages[0].created_at.endswith("Z") and memory.messages[0].token_count > 0
    assert memory.context is None and memory.tokens == 0


def test_a_session_that_does_not_exist_reads_as_empty(client):
    memory = client.get_memory("never-written")
    assert memory.messages == [] and memory.context is None and memory.tokens == 0


def test_context_seeds_the_summary_and_an_empty_append_is_valid(client):
    assert client.append("seeded", [], context="The user plans a release.").message_ids == []
    assert client.get_memory("seeded").context == "The user plans a release."


def test_the_same_idempotency_key_appends_once_and_replays_the_first_answer(client):
    key = str(uuid.uuid4())
    first = client.append("s", [Message(role="user", content="once")], idempotency_key=key)
    again = client.append("s", [Message(role="user", content="once")], idempotency_key=key)
    assert again.message_ids == first.message_ids and again.replayed and not first.replayed
    assert len(client.get_memory("s").messages) == 1


def test_session_ids_with_slashes_dots_and_unicode_reach_their_own_session(client):
    ids = ["a/b", "../memory", "..", "2026-12-02T10:00:00.000Z", "é ?#%", "a//b"]
    for n, session_id in enumerate(ids):
        client.append(session_id, [Message(role="user", content=f"m{n}")])
    for n, session_id in enumerate(ids):
        assert [m.content for m in client.get_memory(session_id).messages] == [f"m{n}"]
    assert sorted(client.list_sessions(size=100)) == sorted(ids)


def test_delete_memory_erases_the_session(client):
    client.append("gone", [Message(role="user", content="x")])
    client.delete_memory("gone")
    client.delete_memory("gone")  # also fine when it does not exist
    assert client.get_memory("gone").messages == []
    assert "gone" not in client.list_sessions()


def test_list_sessions_pages_least_recently_written_first(client):
    for name in ("one", "two", "three"):
        client.append(name, [Message(role="user", content=name)])
    assert client.list_sessions() == ["one", "two", "three"]
    assert client.list_sessions(page=2, size=2) == ["three"]


def test_get_and_delete_one_message(client):
    ids = client.append(
        "s", [Message(role="user", content="a"), Message(role="user", content="b")]
    ).message_ids
    assert client.get_message("s", ids[0]).content == "a"
    client.delete_message("s", ids[0])
    with pytest.raises(NotFoundError) as caught:
        client.get_message("s", ids[0])
    assert caught.value.code == "message_not_found" and caught.value.status_code == 404
    assert caught.value.request_id
    with pytest.raises(NotFoundError):
        client.delete_message("s", ids[0])
    assert [m.content for m in client.get_memory("s").messages] == ["b"]


def test_history_pages_backwards_and_iter_history_walks_it_all(client):
    client.append("h", [Message(role="user", content=f"m{i}") for i in range(1, 8)])
    page = client.history("h", limit=3)
    assert [m.id for m in page.messages] == [7, 6, 5] and page.next_before == 5
    page = client.history("h", before=page.next_before, limit=3)
    assert [m.id for m in page.messages] == [4, 3, 2]
    assert [m.id for m in client.iter_history("h", page_size=2)] == [7, 6, 5, 4, 3, 2, 1]


def test_retrieve_and_search_find_messages_by_keyword(client):
    client.append(
        "release",
        [
            Message(role="user", content="When do we ship the release?", metadata={"channel": "web"}),
            Message(role="assistant", content="The weather is nice."),
        ],
    )
    client.append(
        "other", [Message(role="user", content="Release notes are due", metadata={"channel": "mail"})]
    )
    wait_until_indexed(client, "release")
    wait_until_indexed(client, "other")
    hits = client.retrieve("release", "ship release", k=5, mode="keyword")
    assert hits[0].content == "When do we ship the release?" and hits[0].id == 1
    assert hits[0].metadata == {"channel": "web"} and 0 <= hits[0].dist < 1
    found = client.search("release", k=10)
    assert {(h.session_id, h.id) for h in found} == {("release", 1), ("other", 1)}
    only_mail = client.search("release", metadata={"channel": "mail"})
    assert [(h.session_id, h.content) for h in only_mail] == [("other", "Release notes are due")]
    assert [h.session_id for h in client.search("release", session_ids=["release"])] == ["release"]


def test_get_context_assembles_the_summary_and_window_oldest_first(client):
    client.append(
        "ctx",
        [Message(role="Human", content="hello"), Message(role="AI", content="hi there")],
        context="Earlier: greetings.",
    )
    context = client.get_context("ctx", model="gpt-4o", max_tokens=1000)
    assert [m.role for m in context.messages] == ["system", "user", "assistant"]
    assert "Earlier: greetings." in (context.messages[0].content or "")
    assert context.encoding == "o200k_base" and context.model == "gpt-4o" and context.omitted == 0
    assert 0 < context.tokens <= 1000
    assert context.openai_messages()[1] == {"role": "user", "content": "hello"}
    tight = client.get_context("ctx", model="gpt-4o", max_tokens=5)
    assert tight.messages == [] and tight.tokens <= 5


def test_tool_call_messages_round_trip(client):
    call = ToolCall(id="call_1", function=ToolFunction(name="weather", arguments='{"city": "Paris"}'))
    ids = client.append(
        "tools",
        [
            Message(role="user", content="Weather in Paris?"),
            Message(role="assistant", content=None, tool_calls=[call]),
            Message(role="tool", content='{"temp": 18}', tool_call_id="call_1", name="weather"),
        ],
    ).message_ids
    assistant = client.get_message("tools", ids[1])
    assert assistant.tool_calls == [call] and assistant.content == ""
    tool = client.get_memory("tools").messages[0]
    assert (tool.role, tool.tool_call_id, tool.name) == ("tool", "call_1", "weather")
    context = client.get_context("tools", model="gpt-4o-mini", max_tokens=1000).messages
    assert context[1].tool_calls == [call.model_dump()]
    tool_in_context = context[2]
    assert (tool_in_context.role, tool_in_context.content, tool_in_context.tool_call_id) == (
        "tool",
        '{"temp": 18}',
        "call_1",
    )


def test_current_key_and_usage_describe_the_caller(client, tenant):
    assert (client.current_key().tenant_id, client.current_key().key_id) == (tenant.id, tenant.key_id)
    client.append("u", [Message(role="user", content="x"), Message(role="user", content="y")])
    usage = client.usage()
    assert usage.tenant_id == tenant.id and usage.sessions == 1
    assert usage.messages.total == 2 and usage.messages.today == 2


def test_errors_carry_the_servers_code_message_status_and_request_id(live, client):
    with Recollect(live.url, "rk_not-a-real-key") as stranger, pytest.raises(AuthenticationError) as caught:
        stranger.get_memory("s")
    assert caught.value.status_code == 401 and caught.value.code == "unauthorized" and caught.value.request_id
    with pytest.raises(ValidationError) as invalid:
        client.append("s", [Message(role="", content="x")])
    assert invalid.value.status_code == 422 and invalid.value.code == "invalid_field"
    assert "role" in invalid.value.message
    with pytest.raises(BadRequestError) as bad:
        client.list_sessions(size=1000)
    assert bad.value.code == "invalid_parameter"
    with pytest.raises(BadRequestError) as no_embeddings:
        client.retrieve("s", "anything", mode="vector")
    assert no_embeddings.value.code == "embeddings_not_configured"


def test_a_lost_response_is_resent_with_the_same_key_and_appends_nothing_twice(live, tenant, recording):
    """The first attempt reaches the server and is stored, then the connection drops
    before the answer arrives: the retry replays, it does not append again."""
    transport = recording(lose_responses=1)
    with Recollect(live.url, tenant.api_key, transport=transport) as sdk:
        result = sdk.append("flaky", [Message(role="user", content="only once")])
        assert result.replayed and result.message_ids == [1]
        assert [m.content for m in sdk.get_memory("flaky").messages] == ["only once"]
    keys = [r.headers["Idempotency-Key"] for r in transport.requests if r.method == "POST"]
    assert len(keys) == 2 and keys[0] == keys[1] and uuid.UUID(keys[0]).version == 4


def test_each_append_gets_its_own_idempotency_key(live, tenant, recording):
    transport = recording()
    with Recollect(live.url, tenant.api_key, transport=transport) as sdk:
        sdk.append("s", [Message(role="user", content="a")])
        sdk.append("s", [Message(role="user", content="a")])
        assert len(sdk.get_memory("s").messages) == 2
    keys = {r.headers["Idempotency-Key"] for r in transport.requests if r.method == "POST"}
    assert len(keys) == 2


def test_a_rate_limited_call_waits_retry_after_and_succeeds(live, make_tenant, recording):
    limited = make_tenant(rate_limit="2/second")
    transport = recording()
    with Recollect(live.url, limited.api_key, transport=transport, max_retries=5) as sdk:
        for _ in range(4):
            assert sdk.current_key().tenant_id == limited.id
    assert 429 in transport.statuses and transport.statuses[-1] == 200
    with (
        Recollect(live.url, limited.api_key, max_retries=0) as impatient,
        pytest.raises(RateLimitError) as caught,
    ):
        for _ in range(5):
            impatient.current_key()
    assert caught.value.code == "rate_limited" and caught.value.retry_after is not None


def test_storage_down_raises_service_unavailable_after_retrying(recording, start_server):
    from devtools.processes import free_port

    dead = start_server(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    transport = recording()
    well_formed = "rk_" + "a" * 12 + "_" + "b" * 43  # a malformed key is refused before Redis
    with Recollect(dead.url, well_formed, transport=transport, max_retries=1) as sdk:
        started = time.monotonic()
        with pytest.raises(ServiceUnavailableError) as caught:
            sdk.get_memory("s")
    assert caught.value.code == "store_unavailable" and caught.value.retry_after == 1
    assert transport.statuses == [503, 503] and time.monotonic() - started >= 1  # waited Retry-After


def test_an_unreachable_server_raises_a_connection_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        sdk = Recollect(f"http://127.0.0.1:{port}", "rk_x", max_retries=1)
        with sdk, pytest.raises(APIConnectionError) as caught:
            sdk.get_memory("s")
    assert not isinstance(caught.value, APITimeoutError)


def test_a_server_that_never_answers_times_out():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()  # the kernel accepts connections; nobody ever answers
        with Recollect(f"http://127.0.0.1:{s.getsockname()[1]}", "rk_x", timeout=0.2, max_retries=0) as sdk:
            started = time.monotonic()
            with pytest.raises(APITimeoutError):
                sdk.get_memory("s")
    assert time.monotonic() - started < 2


def test_a_base_url_with_a_path_keeps_it(live, client, tenant):
    with Recollect(live.url + "/motorhead/", tenant.api_key) as prefixed:
        prefixed.append("via-prefix", [Message(role="Human", content="hi")])
    assert [m.content for m in client.get_memory("via-prefix").messages] == ["hi"]


def test_a_path_scoped_key_in_the_base_url_authenticates(live, tenant):
    pytest.importorskip("app.path_keys", reason="this server has no path-scoped keys (api.md §9) yet")
    with Recollect(f"{live.url}/k/{tenant.api_key}") as keyed:
        assert keyed.current_key().tenant_id == tenant.id
        keyed.append("a/b", [Message(role="user", content="through the path")])
        assert [m.content for m in keyed.get_memory("a/b").messages] == ["through the path"]
        assert tenant.api_key not in repr(keyed)


def test_export_then_delete_then_import_gives_the_same_lines(live, client):
    if not live.has_route("/sessions/<sid:session_id>/export"):
        pytest.skip("this server has no export/import routes (api.md §10) yet")
    client.append(
        "exp",
        [Message(role="user", content="a", metadata={"k": 1}), Message(role="assistant", content="b")],
        context="summary so far",
    )
    with client.export_session("exp") as stream:
        lines = list(stream)
    assert lines[0]["type"] == "session" and lines[0]["session_id"] == "exp"
    assert [(line["type"], line.get("content")) for line in lines[1:]] == [("message", "a"), ("message", "b")]
    client.delete_memory("exp")
    imported = client.import_session("exp", lines)
    assert (imported.session_id, imported.messages, imported.last_id) == ("exp", 2, 2)
    assert list(client.export_session("exp")) == lines
    with pytest.raises(ConflictError) as conflict:
        client.import_session("exp", lines)
    assert conflict.value.code == "session_exists"
