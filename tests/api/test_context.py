"""GET /sessions/{id}/context: the context to send to a chat model, within its token budget,
counted as OpenAI's cookbook counts chat messages — checked here against an independent
count with tiktoken, for several budgets and both encodings."""

from __future__ import annotations

import json

import pytest

from app.domain.tokens import get_encoding
from tests.api.test_search import FACTS, add, indexed
from tests.api.test_summarization import memory, wait_until

CALL = {"id": "call_7", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}
CONVERSATION = [
    {"role": "Human", "content": "Hi, I am planning a trip to Oslo."},
    {"role": "AI", "content": "Nice! When are you going?"},
    {"role": "Bob Smith", "content": "Next week, with my brother."},
    {"role": "AI", "content": "", "tool_calls": [CALL]},
    {"role": "tool", "content": "12 C and rain", "tool_call_id": "call_7", "name": "weather"},
    {"role": "assistant", "content": "Expect 12 C and rain: pack a coat."},
    {"role": "user", "content": "Thanks, what about museums?"},
]


def cookbook_tokens(messages: list[dict], encoding: str) -> int:
    """OpenAI's cookbook recipe, written out independently of the server's code."""
    enc = get_encoding(encoding)
    total = 3
    for message in messages:
        total += 3
        for key, value in message.items():
            if key == "tool_calls":
                total += len(enc.encode(json.dumps(value, separators=(",", ":"))))
            elif isinstance(value, str):
                total += len(enc.encode(value))
            if key == "name":
                total += 1
    return total


def context(client, tenant, session: str, **params) -> dict:
    response = client.get(f"/sessions/{session}/context", query_string=params, headers=tenant.headers)
    assert response.status_code == 200, response.json
    return response.json


def seed(client, tenant, session: str = "s1", summary: str | None = "The user is planning a trip.") -> None:
    body = {"messages": CONVERSATION} | ({"context": summary} if summary else {})
    assert client.post(f"/sessions/{session}/memory", json=body, headers=tenant.headers).status_code == 200


def test_the_whole_context_in_openai_chat_format_oldest_first(client, tenant):
    seed(client, tenant)
    body = context(client, tenant, "s1", model="gpt-4o", max_tokens=10_000)
    assert body["model"] == "gpt-4o" and body["encoding"] == "o200k_base" and body["omitted"] == 0
    messages = body["messages"]
    assert messages[0] == {
        "role": "system",
        "content": "Summary of the conversation so far:\nThe user is planning a trip.",
    }
    assert [m["role"] for m in messages[1:]] == [
        "user",
        "assistant",
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
    ]
    assert messages[3] == {"role": "user", "content": "Next week, with my brother.", "name": "Bob_Smith"}
    assert messages[4]["tool_calls"] == [CALL]
    assert messages[5] == {"role": "tool", "content": "12 C and rain", "tool_call_id": "call_7"}
    assert body["tokens"] == cookbook_tokens(messages, "o200k_base")


@pytest.mark.parametrize(("model", "encoding"), [("gpt-4o-mini", "o200k_base"), ("gpt-4", "cl100k_base")])
def test_every_budget_is_respected_counted_exactly_and_filled_from_the_newest(
    client, tenant, model, encoding
):
    seed(client, tenant)
    full = context(client, tenant, "s1", model=model, max_tokens=100_000)
    assert full["encoding"] == encoding
    previous = 0
    for budget in range(1, full["tokens"] + 2):
        body = context(client, tenant, "s1", model=model, max_tokens=budget)
        messages = body["messages"]
        assert body["tokens"] <= budget
        assert body["tokens"] == (cookbook_tokens(messages, encoding) if messages else 0)
        window = messages[1:] if messages and messages[0]["role"] == "system" else messages
        assert window == full["messages"][len(full["messages"]) - len(window) :], "the newest, contiguous"
        assert body["omitted"] == len(CONVERSATION) - len(window)
        assert len(messages) >= previous, "a larger budget never holds fewer messages"
        previous = len(messages)
        calls = [m for m in messages if m.get("tool_calls")]
        results = [m for m in messages if m["role"] == "tool"]
        assert bool(calls) == bool(results), f"tool call and result kept together at budget {budget}"
    assert body == full


def test_a_budget_too_small_for_anything_gives_no_messages(client, tenant):
    seed(client, tenant)
    body = context(client, tenant, "s1", model="gpt-4o", max_tokens=5)
    assert body["messages"] == [] and body["tokens"] == 0 and body["omitted"] == len(CONVERSATION)


def test_an_unknown_session_gives_an_empty_context(client, tenant):
    body = context(client, tenant, "nobody", model="llama3", max_tokens=100)
    assert body == {"messages": [], "tokens": 0, "model": "llama3", "encoding": "cl100k_base", "omitted": 0}


@pytest.mark.parametrize(
    "params",
    [
        {"model": "gpt-4o", "max_tokens": "0"},
        {"model": "gpt-4o", "max_tokens": "many"},
        {"model": "gpt-4o"},
        {"max_tokens": "100"},
        {"model": "gpt-4o", "max_tokens": "100", "k": "0"},
    ],
)
def test_bad_parameters_are_a_400(client, tenant, params):
    response = client.get("/sessions/s1/context", query_string=params, headers=tenant.headers)
    assert response.status_code == 400 and response.json["error"]["code"] == "invalid_parameter"


def test_a_tool_result_whose_call_was_folded_away_is_left_out(make_app, tenant):
    client = make_app(window_size=4, sweep_interval_seconds=0.05).test_client()
    body = {"messages": CONVERSATION[:6]}  # ends: the call, its result, the answer
    assert client.post("/sessions/s1/memory", json=body, headers=tenant.headers).status_code == 200
    assert wait_until(lambda: memory(client, tenant, "s1")["pending_summary"] == 0)
    window = [m["role"] for m in reversed(memory(client, tenant, "s1")["messages"])]
    assert window == ["tool", "assistant"], "the fold kept the result but took its call"
    body = context(client, tenant, "s1", model="gpt-4o", max_tokens=10_000)
    assert [m["role"] for m in body["messages"]] == ["system", "assistant"]
    assert body["omitted"] == 1


def test_with_a_query_the_relevant_archived_messages_join_the_system_message(make_app, tenant):
    client = make_app(
        window_size=4, sweep_interval_seconds=0.05, index_sweep_interval_seconds=0.05
    ).test_client()
    add(client, tenant, "s1", *FACTS)
    assert wait_until(lambda: memory(client, tenant, "s1")["context"] is not None)
    assert wait_until(lambda: indexed(client, tenant, "s1"))
    body = context(
        client, tenant, "s1", model="gpt-4o", max_tokens=10_000, query="what is the cat called?", k=2
    )
    system = body["messages"][0]["content"]
    assert "Relevant earlier messages:" in system and "My cat is called Miso" in system
    assert body["tokens"] == cookbook_tokens(body["messages"], "o200k_base")
    window = [m["content"] for m in body["messages"][1:]]
    assert "My cat is called Miso and she likes tuna" not in window


def test_a_query_needs_long_term_memory(make_app, make_tenant):
    tenant = make_tenant("acme", long_term_memory=False)
    client = make_app().test_client()
    seed(client, tenant)
    response = client.get(
        "/sessions/s1/context",
        query_string={"model": "gpt-4o", "max_tokens": 100, "query": "x"},
        headers=tenant.headers,
    )
    assert response.status_code == 400 and response.json["error"]["code"] == "long_term_memory_disabled"
    assert context(client, tenant, "s1", model="gpt-4o", max_tokens=1000)["messages"], (
        "without a query it works"
    )
