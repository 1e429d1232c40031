"""The pure context assembly (api.md §8): the model's encoding, OpenAI's roles, the
cookbook's token count, the budget (summary first, then the newest window messages), tool
calls kept or left out with their results. Counts are checked against ``cookbook``, an
independent implementation with tiktoken's encoder."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.domain.context.assembly import (
    assemble,
    chat_message,
    encoding_for_model,
    message_tokens,
    system_content,
)

from .cookbook import (
    CL100K_MODELS,
    MODEL_FOR,
    O200K_MODELS,
    REPLY_TOKENS,
    Window,
    cookbook_count,
    expected_chat,
    expected_context,
    message_cost,
    text_tokens,
)

ENCODINGS = ["cl100k_base", "o200k_base"]
OPENAI_ROLES = {"system", "user", "assistant", "tool"}
KNOWN_ROLES = {"Human", "human", "user", "AI", "ai", "assistant", "system", "tool"}
CHAT_FIELDS = {"role", "content", "name", "tool_calls", "tool_call_id"}
NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Counted differently by the two encodings (14 tokens with cl100k_base, 9 with o200k_base).
UNICODE = "Ünïcödé — 東京 🎉"


def stored(role: str, content: str, **extra) -> dict:
    return {"id": 1, "role": role, "content": content, "created_at": "2024-05-01T12:00:00.000Z"} | extra


def system_candidates(summary: str | None, relevant: list[dict]) -> list[str | None]:
    """The system contents in order of preference: every relevant message, then one less
    (the least relevant dropped first), ..., then the summary alone."""
    return [system_content(summary, relevant[:keep]) for keep in range(len(relevant), -1, -1)]


def a_window() -> Window:
    """Every kind of unit: other speakers, names, a tool group with a result missing and
    one out of order, an orphan after a plain message, a pending call."""
    return (
        Window()
        .orphan("42 degrees")  # its call was folded away
        .say("Human", "What's the weather in Paris and in Tokyo?")
        .call(
            "",
            [("weather", '{"city":"Paris"}'), ("weather", '{"city":"Tokyo"}'), ("time", "{}")],
            [(1, "Tokyo: 18°C, rain"), (0, "Paris: 21°C, sunny")],
        )
        .say("AI", "Paris is sunny at 21°C; Tokyo rainy at 18°C.")
        .say("Narrator", "The user goes quiet for a while.")
        .orphan("late result", "call_1")  # answers a call, but not the message before it
        .say("human", UNICODE, name="alice")
        .say("system", "Be concise.")
        .call("Let me look that up.", [("search", '{"q":"東京 tower"}')], [(0, "333 m")], role="AI")
        .say("assistant", "Tokyo Tower is 333 m tall. <|endoftext|>")
        .call("", [("book", '{"seat":"12A"}')], [])  # no result yet
    )


# --- the encoding ------------------------------------------------------------------------


@pytest.mark.parametrize("model", O200K_MODELS)
def test_the_gpt_4o_4_1_5_and_o_series_families_count_with_o200k_base(model):
    assert encoding_for_model(model) == "o200k_base"


@pytest.mark.parametrize("model", CL100K_MODELS)
def test_other_models_count_with_cl100k_base(model):
    assert encoding_for_model(model) == "cl100k_base"


@pytest.mark.parametrize(
    "model", ["ft:gpt-4o-mini-2024-07-18:acme::9abcDEF", "ft:gpt-4.1-2025-04-14:acme::x1"]
)
def test_a_fine_tuned_model_counts_like_its_base(model):
    assert encoding_for_model(model) == "o200k_base"


@pytest.mark.parametrize(("model", "encoding"), [("gpt-4o-mini", "o200k_base"), ("llama3", "cl100k_base")])
def test_the_context_names_its_model_and_encoding_even_when_empty(model, encoding):
    context = assemble(None, [], model=model, max_tokens=100)
    assert (context.model, context.encoding) == (model, encoding)


@pytest.mark.parametrize(("model", "content_tokens"), [("gpt-4", 14), ("gpt-4o", 9), ("o3-mini", 9)])
def test_the_count_uses_the_models_encoding(model, content_tokens):
    context = assemble(None, [stored("user", UNICODE)], model=model, max_tokens=100)
    assert context.tokens == REPLY_TOKENS + 3 + 1 + content_tokens


# --- roles -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "openai_role"),
    [
        ("Human", "user"),
        ("human", "user"),
        ("user", "user"),
        ("AI", "assistant"),
        ("ai", "assistant"),
        ("assistant", "assistant"),
        ("system", "system"),
        ("tool", "tool"),
    ],
)
def test_known_roles_map_to_openais(role, openai_role):
    assert chat_message(stored(role, "hi")) == {"role": openai_role, "content": "hi"}


@pytest.mark.parametrize(
    ("role", "name"),
    [
        ("Narrator", "Narrator"),
        ("bob smith", "bob_smith"),
        ("robot:42", "robot_42"),
        ("Zoë", "Zo_"),
        ("agent-7_b", "agent-7_b"),
        ("東京", "__"),
        ("HUMAN", "HUMAN"),
        ("Assistant", "Assistant"),
        ("x" * 300, "x" * 64),
    ],
)
def test_another_speaker_is_a_user_named_after_the_role(role, name):
    assert chat_message(stored(role, "hi")) == {"role": "user", "content": "hi", "name": name}


@given(st.text(min_size=1, max_size=300).filter(lambda role: role not in KNOWN_ROLES))
@settings(max_examples=100, deadline=None, database=None)
def test_any_other_role_gives_a_valid_openai_name(role):
    chat = chat_message(stored(role, "hi"))
    assert chat == expected_chat(stored(role, "hi"))
    assert chat["role"] == "user" and NAME.match(chat["name"]), chat


@pytest.mark.parametrize(
    ("role", "openai_role"), [("Narrator", "user"), ("Human", "user"), ("AI", "assistant")]
)
def test_an_explicit_name_wins_made_safe_for_openai(role, openai_role):
    assert chat_message(stored(role, "hi", name="alice w.")) == {
        "role": openai_role,
        "content": "hi",
        "name": "alice_w_",
    }


def test_only_openais_fields_are_sent():
    calls = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    assistant = stored("AI", "", tool_calls=calls, metadata={"a": 1}, token_count=9)
    assert chat_message(assistant) == {"role": "assistant", "content": "", "tool_calls": calls}
    tool = stored("tool", "done", tool_call_id="c1", metadata={"a": 1}, token_count=9)
    assert chat_message(tool) == {"role": "tool", "content": "done", "tool_call_id": "c1"}


def test_tool_fields_stay_on_the_roles_openai_accepts_them_on():
    calls = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    assert chat_message(stored("Human", "x", tool_calls=calls, tool_call_id="c1")) == {
        "role": "user",
        "content": "x",
    }


# --- counting ----------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_cookbook_anchor_counts(encoding):
    """Hand-checked: 3 per message, "user" 1, "hello world" 2, a name 1 + its tokens, 3
    for the reply."""
    model = MODEL_FOR[encoding]
    plain = assemble(None, [stored("user", "hello world")], model=model, max_tokens=100)
    assert plain.tokens == 3 + 1 + 2 + 3
    named = assemble(None, [stored("user", "hello world", name="alice")], model=model, max_tokens=100)
    assert named.tokens == 3 + 1 + 2 + 1 + text_tokens("alice", encoding) + 3


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_every_message_of_a_window_costs_the_cookbook_count(encoding):
    for message in a_window().messages:
        chat = chat_message(message)
        assert message_tokens(chat, encoding) == message_cost(chat, encoding), message


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_tool_calls_json_is_counted(encoding):
    calls = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": "東京"}'}}]
    with_calls = chat_message(stored("AI", "", tool_calls=calls))
    without = chat_message(stored("AI", ""))
    assert message_tokens(with_calls, encoding) > message_tokens(without, encoding)
    assert message_tokens(with_calls, encoding) == message_cost(with_calls, encoding)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_special_token_text_counts_as_plain_text(encoding):
    chat = {"role": "user", "content": "a <|endoftext|> b <|endofprompt|>"}
    assert message_tokens(chat, encoding) == message_cost(chat, encoding) > 3 + 1 + 2


# --- the budget --------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_every_budget_keeps_the_newest_units_that_fit(encoding):
    window = a_window()
    model = MODEL_FOR[encoding]
    everything = expected_context(window, encoding=encoding, max_tokens=10**6, system=[None])
    assert everything.omitted == window.orphans == 2
    for budget in range(everything.tokens + 3):
        context = assemble(None, window.messages, model=model, max_tokens=budget)
        expected = expected_context(window, encoding=encoding, max_tokens=budget, system=[None])
        assert context.messages == expected.messages, budget
        assert context.tokens == expected.tokens == cookbook_count(context.messages, encoding) <= budget
        assert context.omitted == expected.omitted, budget
    assert assemble(None, window.messages, model=model, max_tokens=everything.tokens).omitted == 2


@pytest.mark.parametrize("budget", [-5, 0, 1, 2, 3])
def test_a_budget_too_small_for_anything_gives_nothing(budget):
    window = a_window()
    context = assemble("a summary", window.messages, model="gpt-4o", max_tokens=budget)
    assert (context.messages, context.tokens, context.omitted) == ([], 0, len(window.messages))


def test_an_empty_window_without_a_summary_costs_nothing():
    context = assemble(None, [], model="gpt-4", max_tokens=1000)
    assert (context.messages, context.tokens, context.omitted) == ([], 0, 0)


def test_a_window_of_orphans_costs_nothing():
    window = Window().orphan("a").orphan("b", "call_x")
    context = assemble(None, window.messages, model="gpt-4", max_tokens=1000)
    assert (context.messages, context.tokens, context.omitted) == ([], 0, 2)


def test_a_tool_call_and_its_results_are_left_out_together():
    window = (
        Window()
        .say("Human", "Book me a seat")
        .call("", [("book", '{"seat":"12A"}')], [(0, "booked " * 40)])
        .say("AI", "Done.")
    )
    encoding = "cl100k_base"
    newest = cookbook_count(window.units[-1], encoding)
    results_only = newest + message_cost(window.units[1][1], encoding)
    group = newest + sum(message_cost(m, encoding) for m in window.units[1])
    for budget in (results_only, group - 1):
        context = assemble(None, window.messages, model="gpt-4", max_tokens=budget)
        assert context.messages == window.units[-1]
        assert context.omitted == 3
    context = assemble(None, window.messages, model="gpt-4", max_tokens=group)
    assert context.messages == window.units[1] + window.units[2]


def test_an_older_short_message_is_not_kept_past_a_unit_that_does_not_fit():
    """Contiguous: the oldest are dropped first, nothing in between goes missing."""
    window = Window().say("Human", "ok").say("AI", "long " * 200).say("Human", "thanks")
    context = assemble(None, window.messages, model="gpt-4", max_tokens=40)
    assert context.messages == window.units[2]
    assert context.omitted == 2


def test_orphan_results_are_dropped_and_counted():
    window = (
        Window()
        .orphan("first")  # at the start: its call was folded
        .say("Human", "hi")
        .orphan("after a user message", "call_1")
        .call("", [("f", "{}")], [(0, "r")])
        .orphan("unknown call", "call_999")  # after a group, answering nothing in it
        .say("AI", "bye")
    )
    context = assemble(None, window.messages, model="gpt-4o", max_tokens=10_000)
    assert context.messages == [m for unit in window.units for m in unit]
    assert all(
        m["content"] not in ("first", "after a user message", "unknown call") for m in context.messages
    )
    assert context.omitted == 3


# --- the summary and the relevant messages -----------------------------------------------

SUMMARY = "Alice planned a trip to Paris in May; she prefers trains."
RELEVANT = [
    {"id": i, "role": role, "content": content, "created_at": f"2024-0{i}-01T00:00:00.000Z"}
    for i, (role, content) in enumerate(
        [
            ("Human", "alpha: I am allergic to peanuts"),
            ("AI", "beta: noted, no peanuts"),
            ("Human", "gamma: my passport expires in June"),
            ("Narrator", "delta: she booked the 9:15 train"),
        ],
        start=1,
    )
]


def test_the_system_message_labels_the_summary_and_the_relevant_messages_in_order():
    content = system_content(SUMMARY, RELEVANT)
    assert content is not None
    positions = [content.index(SUMMARY)] + [content.index(m["content"]) for m in RELEVANT]
    assert positions == sorted(positions)
    for m in RELEVANT:  # each says who and when
        line = next(line for line in content.splitlines() if m["content"] in line)
        assert m["role"] in line and m["created_at"] in line
    only_relevant = system_content(None, RELEVANT)
    assert only_relevant is not None and all(m["content"] in only_relevant for m in RELEVANT)
    assert SUMMARY not in only_relevant
    only_summary = system_content(SUMMARY, [])
    assert only_summary is not None and SUMMARY in only_summary
    assert not any(m["content"] in only_summary for m in RELEVANT)
    assert system_content(None, []) is None and system_content("", []) is None


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("summary", [SUMMARY, None])
def test_relevant_messages_are_trimmed_from_the_least_relevant_end(encoding, summary):
    window = Window().say("Human", "Which train?").say("AI", "The 9:15.")
    model = MODEL_FOR[encoding]
    candidates = system_candidates(summary, RELEVANT)
    full = expected_context(window, encoding=encoding, max_tokens=10**6, system=candidates)
    seen = set()
    for budget in range(full.tokens + 2):
        context = assemble(summary, window.messages, model=model, max_tokens=budget, relevant=RELEVANT)
        expected = expected_context(window, encoding=encoding, max_tokens=budget, system=candidates)
        assert context.messages == expected.messages, budget
        assert context.tokens == cookbook_count(context.messages, encoding) <= budget
        assert context.omitted == expected.omitted
        if context.messages and context.messages[0]["role"] == "system":
            content = context.messages[0]["content"]
            present = [m["content"] in content for m in RELEVANT]
            kept = sum(present)
            assert present == [True] * kept + [False] * (len(RELEVANT) - kept)  # a prefix
            if summary:
                assert summary in content
            if kept < len(RELEVANT):  # maximal: one more relevant message would not fit
                bigger = {"role": "system", "content": system_content(summary, RELEVANT[: kept + 1])}
                assert REPLY_TOKENS + message_cost(bigger, encoding) > budget
            seen.add(kept)
    assert seen == set(range(len(RELEVANT) + 1)) if summary else set(range(1, len(RELEVANT) + 1))


def test_the_summary_alone_when_no_relevant_message_fits_and_none_when_it_does_not_fit():
    encoding, model = "o200k_base", "gpt-4o"
    alone = {"role": "system", "content": system_content(SUMMARY, [])}
    just_summary = REPLY_TOKENS + message_cost(alone, encoding)
    context = assemble(SUMMARY, [], model=model, max_tokens=just_summary, relevant=RELEVANT)
    assert context.messages == [alone] and context.tokens == just_summary
    context = assemble(SUMMARY, [], model=model, max_tokens=just_summary - 1, relevant=RELEVANT)
    assert (context.messages, context.tokens) == ([], 0)


def test_the_summary_comes_before_the_window_and_takes_its_share_first():
    encoding, model = "cl100k_base", "gpt-4"
    window = Window().say("Human", "one").say("AI", "two").say("Human", "three")
    system = {"role": "system", "content": system_content(SUMMARY, [])}
    budget = cookbook_count([system, *window.units[2]], encoding)
    context = assemble(SUMMARY, window.messages, model=model, max_tokens=budget)
    assert context.messages == [system, *window.units[2]]
    assert (context.tokens, context.omitted) == (budget, 2)


def test_a_summary_too_large_leaves_the_budget_to_the_window():
    huge = "words " * 2000
    window = Window().say("Human", "one").say("AI", "two")
    context = assemble(huge, window.messages, model="gpt-4", max_tokens=100, relevant=RELEVANT)
    assert context.messages == window.units[0] + window.units[1]
    assert context.tokens == cookbook_count(context.messages, "cl100k_base")


def test_an_empty_summary_gives_no_system_message():
    window = Window().say("Human", "one")
    assert assemble("", window.messages, model="gpt-4", max_tokens=100).messages == window.units[0]


# --- properties --------------------------------------------------------------------------

_PHRASES = [
    "",
    "hello world",
    UNICODE,
    "<|endoftext|>",
    "  def f(x):\n\treturn x**2\n",
    "The quick brown fox jumps over the lazy dog.",
    "🦊" * 5,
    "a" * 50,
]
texts = st.one_of(st.sampled_from(_PHRASES), st.text(max_size=40))
roles = st.sampled_from(
    ["Human", "human", "user", "AI", "ai", "assistant", "system", "Narrator", "bob smith", "Zoë", "x" * 80]
)
names = st.one_of(st.none(), st.sampled_from(["alice", "Bob_2", "carol-x"]))


@st.composite
def windows(draw) -> Window:
    window = Window()
    for _ in range(draw(st.integers(0, 9))):
        kind = draw(st.sampled_from(["say", "say", "say", "call", "orphan"]))
        if kind == "say":
            window.say(draw(roles), draw(texts), name=draw(names))
        elif kind == "orphan":
            # Folded away, or answering a call that is not the message before it.
            earlier = [f"call_{n}" for n in range(1, window._calls + 1)]
            ids = sorted({"call_folded", *earlier} - window.open_calls())
            window.orphan(draw(texts), draw(st.sampled_from(ids)))
        else:
            functions = draw(
                st.lists(st.tuples(st.sampled_from(["f", "weather", "book"]), texts), min_size=1, max_size=3)
            )
            answered = draw(st.permutations(range(len(functions))))
            answers = [(i, draw(texts)) for i in answered[: draw(st.integers(0, len(functions)))]]
            window.call(
                draw(texts), functions, answers, role=draw(st.sampled_from(["assistant", "AI", "ai"]))
            )
    return window


def check_tool_groups(messages: list[dict], window: Window) -> None:
    """Every sent tool result follows the call it answers (only results in between), and
    every sent call comes with all of its results."""
    results = {m["tool_call_id"]: m for unit in window.units for m in unit[1:]}
    open_calls: set[str] = set()
    for index, m in enumerate(messages):
        if m["role"] == "tool":
            assert m["tool_call_id"] in open_calls
            continue
        open_calls = {c["id"] for c in m.get("tool_calls", [])}
        following = []
        for later in messages[index + 1 :]:
            if later["role"] != "tool":
                break
            following.append(later)
        assert following == [results[c] for c in (x["tool_call_id"] for x in following)]
        assert {x["tool_call_id"] for x in following} == open_calls & set(results)


@given(
    window=windows(),
    encoding=st.sampled_from(ENCODINGS),
    summary=st.one_of(st.none(), st.sampled_from([SUMMARY, ""]), texts),
    relevant=st.integers(0, len(RELEVANT)),
    data=st.data(),
)
@settings(max_examples=80, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_window_within_any_budget(window, encoding, summary, relevant, data):
    model = MODEL_FOR[encoding]
    chosen = RELEVANT[:relevant]
    candidates = system_candidates(summary, chosen)
    full = expected_context(window, encoding=encoding, max_tokens=10**6, system=candidates)
    budgets = {0, 3, full.tokens, full.tokens - 1, full.tokens + 1}
    budgets |= set(data.draw(st.lists(st.integers(0, full.tokens + 5), max_size=6)))
    for budget in sorted(budgets):
        context = assemble(summary, window.messages, model=model, max_tokens=budget, relevant=chosen)
        expected = expected_context(window, encoding=encoding, max_tokens=budget, system=candidates)
        assert context.encoding == encoding
        assert context.tokens <= max(budget, 0)
        assert context.tokens == cookbook_count(context.messages, encoding)
        assert context.messages == expected.messages
        assert context.omitted == expected.omitted
        for m in context.messages:
            assert m["role"] in OPENAI_ROLES and set(m) <= CHAT_FIELDS
        # The window part: a contiguous run of the newest units, whole...
        sent = context.messages[1:] if expected.system is not None else context.messages
        kept = expected.kept_units
        assert sent == [m for unit in window.units[len(window.units) - kept :] for m in unit]
        # ...as long as it can be: the next older unit would not have fit.
        if kept < len(window.units):
            older = window.units[len(window.units) - kept - 1]
            assert (context.tokens or REPLY_TOKENS) + sum(message_cost(m, encoding) for m in older) > budget
        assert len(sent) + context.omitted == len(window.messages)
        check_tool_groups(sent, window)
        if not context.messages:
            assert context.tokens == 0
