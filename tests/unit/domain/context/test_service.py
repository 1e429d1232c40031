"""The context service (api.md §8) over a real session store on fakeredis and a stub
search: the whole window oldest first (the overflow not yet folded included), the summary,
the archived messages relevant to a query, nothing for a session that does not exist."""

from __future__ import annotations

import pytest

from app.domain.errors import InvalidRequest
from app.domain.memory.stored_format import NewMessage

from .conftest import OTHER, TENANT
from .cookbook import cookbook_count, expected_chat

BIG = 100_000


def contents(context) -> list[str]:
    return [m["content"] for m in context.messages]


def test_the_window_is_sent_oldest_first_with_the_overflow_not_yet_folded(
    service, sessions, append, principal, stored
):
    texts = [f"message {i}" for i in range(10)]
    append("s1", *texts)
    # The window holds 10 messages for a window_size of 4: GET shows the newest 4...
    assert sessions.read(TENANT, "s1", limit=4).window_length == 10
    context = service.context(principal(), "s1", model="gpt-4o", max_tokens=BIG)
    # ...the context all of them: none is in the summary yet.
    assert contents(context) == texts
    assert context.messages == [
        expected_chat(m) for m in sorted(stored("s1").values(), key=lambda m: m["id"])
    ]
    assert context.messages[0] == {"role": "user", "content": "message 0"}
    assert context.messages[1] == {"role": "assistant", "content": "message 1"}
    assert (context.omitted, context.model, context.encoding) == (0, "gpt-4o", "o200k_base")
    assert context.tokens == cookbook_count(context.messages, "o200k_base")


def test_a_small_budget_keeps_the_newest(service, append, principal):
    append("s1", *[f"message {i}" for i in range(10)])
    three = [{"role": "assistant" if i % 2 else "user", "content": f"message {i}"} for i in (7, 8, 9)]
    budget = cookbook_count(three, "cl100k_base")
    context = service.context(principal(), "s1", model="gpt-4", max_tokens=budget + 1)
    assert context.messages == three
    assert (context.tokens, context.omitted) == (budget, 7)


def test_the_summary_leads_and_the_folded_messages_are_not_repeated(service, append, fold, principal):
    append("s1", *[f"message {i}" for i in range(8)])
    fold("s1", 5, "They talked about trains.")
    context = service.context(principal(), "s1", model="gpt-4", max_tokens=BIG)
    system, *window = context.messages
    assert system["role"] == "system" and "They talked about trains." in system["content"]
    assert [m["content"] for m in window] == ["message 5", "message 6", "message 7"]
    assert context.tokens == cookbook_count(context.messages, "cl100k_base")


def test_a_summary_given_on_append_is_used(service, append, principal):
    append("s1", "hello", context="seeded summary")
    system, user = service.context(principal(), "s1", model="gpt-4", max_tokens=BIG).messages
    assert "seeded summary" in system["content"] and user == {"role": "user", "content": "hello"}


def test_stored_tool_fields_and_speakers_reach_the_context(service, append, principal):
    calls = [{"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]
    append(
        "s1",
        NewMessage("Narrator", "It is raining.", {"x": 1}, 5),
        NewMessage("AI", "", None, 5, tool_calls=calls),
        NewMessage("tool", "21°C", None, 5, tool_call_id="c1", name="weather"),
        NewMessage("Human", "thanks", None, 5, name="alice"),
    )
    context = service.context(principal(), "s1", model="gpt-4o", max_tokens=BIG)
    assert context.messages == [
        {"role": "user", "content": "It is raining.", "name": "Narrator"},
        {"role": "assistant", "content": "", "tool_calls": calls},
        {"role": "tool", "content": "21°C", "tool_call_id": "c1"},
        {"role": "user", "content": "thanks", "name": "alice"},
    ]
    assert context.tokens == cookbook_count(context.messages, "o200k_base")


def test_a_tool_result_whose_call_was_folded_is_left_out(service, append, fold, principal):
    calls = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    append(
        "s1",
        NewMessage("AI", "", None, 5, tool_calls=calls),
        NewMessage("tool", "result", None, 5, tool_call_id="c1"),
        NewMessage("AI", "The result is in.", None, 5),
    )
    fold("s1", 1, "A call to f.")
    context = service.context(principal(), "s1", model="gpt-4", max_tokens=BIG)
    assert [m["role"] for m in context.messages] == ["system", "assistant"]
    assert context.omitted == 1


def test_a_query_adds_only_archived_hits_at_most_k_most_relevant_first(
    service, search, append, fold, principal, stored
):
    append("s1", *[f"paris fact {i}" for i in range(10)])
    fold("s1", 6, "Facts about Paris.")  # 1..6 archived, 7..10 in the window
    by_id = stored("s1")
    search.ranking = [by_id[i] for i in (9, 3, 10, 1, 7, 5, 2)]  # window and archive mixed
    context = service.context(principal(), "s1", model="gpt-4", max_tokens=BIG, query="paris", k=3)
    system = context.messages[0]["content"]
    relevant = [by_id[i]["content"] for i in (3, 1, 5)]  # the 3 best outside the window
    positions = [system.index(text) for text in relevant]
    assert positions == sorted(positions)
    assert "Facts about Paris." in system
    for i in (2, 4, 6, 7, 8, 9, 10):
        assert by_id[i]["content"] not in system
    assert contents(context)[1:] == [by_id[i]["content"] for i in (7, 8, 9, 10)]
    (call,) = search.calls
    assert (call["tenant"], call["session_id"], call["text"], call["mode"]) == (TENANT, "s1", "paris", "auto")
    assert call["k"] >= 3 + 4  # enough for k archived hits behind every window message


def test_fewer_archived_hits_than_k(service, search, append, fold, principal, stored):
    append("s1", *[f"fact {i}" for i in range(6)])
    fold("s1", 2, "summary")
    by_id = stored("s1")
    search.ranking = [by_id[i] for i in (5, 2, 6, 3)]
    context = service.context(principal(), "s1", model="gpt-4", max_tokens=BIG, query="fact", k=5)
    system = context.messages[0]["content"]
    assert "fact 1" in system and "fact 0" not in system
    assert all(f"fact {i}" not in system for i in (2, 3, 4, 5))


def test_no_query_no_search(service, search, append, fold, principal):
    append("s1", "a", "b", "c")
    fold("s1", 1, "summary")
    service.context(principal(), "s1", model="gpt-4", max_tokens=BIG)
    assert search.calls == []


def test_a_long_window_does_not_crowd_out_the_archived_hits(service, search, append, fold, principal, stored):
    append("s1", *[f"paris {i}" for i in range(64)])
    # 1..4 archived, 60 in the window: a tenant's window_size may be up to 1000, and any
    # window grows past its size while its folds fail (LLM down).
    fold("s1", 4, "summary")
    by_id = stored("s1")
    # The window talks about the query more than the archive does: it ranks first.
    search.ranking = [by_id[i] for i in range(64, 4, -1)] + [by_id[i] for i in (1, 2, 3, 4)]
    context = service.context(
        principal(window_size=100), "s1", model="gpt-4", max_tokens=BIG, query="paris", k=2
    )
    system = context.messages[0]["content"]
    assert "paris 0" in system and "paris 1" in system


def test_an_unknown_session_gives_an_empty_context(service, search, principal):
    for query in (None, "anything"):
        context = service.context(principal(), "nobody", model="gpt-4o-mini", max_tokens=BIG, query=query)
        assert (context.messages, context.tokens, context.omitted) == ([], 0, 0)
        assert (context.model, context.encoding) == ("gpt-4o-mini", "o200k_base")


def test_another_tenants_session_is_not_read(service, append, principal):
    append("s1", "secret", tenant=OTHER, context="their summary")
    context = service.context(principal(), "s1", model="gpt-4", max_tokens=BIG)
    assert (context.messages, context.tokens) == ([], 0)
    assert contents(service.context(principal(OTHER), "s1", model="gpt-4", max_tokens=BIG))[1:] == ["secret"]


@pytest.mark.parametrize("session_id", ["", "a\nb", "x" * 257])
def test_an_invalid_session_id_is_refused(service, principal, session_id):
    with pytest.raises(InvalidRequest):
        service.context(principal(), session_id, model="gpt-4", max_tokens=BIG)
