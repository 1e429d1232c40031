"""An independent statement of what a context must look like, written from api.md §8 and
OpenAI's cookbook, not from ``app.domain.context.assembly``: the cookbook's token count
(with tiktoken's encoder directly), the role mapping, and windows of stored messages built
from known units (so the expected grouping never comes from the code under test)."""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from typing import Any

import tiktoken

from app.domain import tokens

TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_TOKENS = 3  # every reply is primed with <|start|>assistant<|message|>

O200K_MODELS = [
    "gpt-4o",
    "gpt-4o-2024-08-06",
    "gpt-4o-mini",
    "chatgpt-4o-latest",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "gpt-5",
    "gpt-5-mini",
    "o1",
    "o1-preview",
    "o3",
    "o3-mini",
    "o4",
    "o4-mini",
]
CL100K_MODELS = [
    "gpt-4",
    "gpt-4-0613",
    "gpt-4-32k",
    "gpt-4-turbo",
    "gpt-3.5-turbo",
    "gpt-3.5-turbo-16k",
    "llama3",
    "llama3-70b",
    "text-davinci-003",
    "mistral-large",
]
# One model per encoding, for the tests that count.
MODEL_FOR = {"cl100k_base": "gpt-4", "o200k_base": "gpt-4o"}

_USER = {"Human", "human", "user"}
_ASSISTANT = {"AI", "ai", "assistant"}


@functools.cache
def encoder(encoding: str) -> tiktoken.Encoding:
    """tiktoken's own Encoding (built offline from the shipped ranks)."""
    return tokens.get_encoding(encoding)


def text_tokens(text: str, encoding: str) -> int:
    # Special-token text in a message is ordinary text: never refused, never special.
    return len(encoder(encoding).encode(text, allowed_special=set(), disallowed_special=()))


def message_cost(message: dict[str, Any], encoding: str) -> int:
    """The cookbook's ``num_tokens_from_messages`` for one message: 3, plus every string
    field's tokens, plus 1 for a name. ``tool_calls`` is counted as its compact JSON."""
    count = TOKENS_PER_MESSAGE
    for key, value in message.items():
        if key == "tool_calls":
            value = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        if isinstance(value, str):
            count += text_tokens(value, encoding)
        if key == "name":
            count += TOKENS_PER_NAME
    return count


def cookbook_count(messages: list[dict[str, Any]], encoding: str) -> int:
    """A whole prompt: its messages plus the reply's priming; nothing to send costs 0."""
    if not messages:
        return 0
    return REPLY_TOKENS + sum(message_cost(m, encoding) for m in messages)


def expected_chat(stored: dict[str, Any]) -> dict[str, Any]:
    """api.md §8's role mapping, applied to a stored message (the API's JSON)."""
    role = stored["role"]
    name = stored.get("name")
    if role in _USER:
        mapped = "user"
    elif role in _ASSISTANT:
        mapped = "assistant"
    elif role in ("system", "tool"):
        mapped = role
    else:
        mapped = "user"
        if name is None:
            name = re.sub(r"[^A-Za-z0-9_-]", "_", role)[:64]
    chat: dict[str, Any] = {"role": mapped, "content": stored["content"]}
    if name is not None and mapped != "tool":  # OpenAI's tool messages take no name
        chat["name"] = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64] or "_"
    if mapped == "assistant" and stored.get("tool_calls"):
        chat["tool_calls"] = stored["tool_calls"]
    if mapped == "tool" and stored.get("tool_call_id") is not None:
        chat["tool_call_id"] = stored["tool_call_id"]
    return chat


@dataclass
class Window:
    """Stored messages (oldest first) built from known units: what a context may keep
    (``units``, each kept or left out whole) and the tool results it must drop."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    units: list[list[dict[str, Any]]] = field(default_factory=list)  # expected chat messages
    orphans: int = 0
    _calls: int = 0

    def _stored(self, role: str, content: str, **extra: Any) -> dict[str, Any]:
        message_id = len(self.messages) + 1
        stored = {
            "id": message_id,
            "role": role,
            "content": content,
            "created_at": f"2024-05-01T12:00:{message_id % 60:02d}.000Z",
            "token_count": 7,
            "metadata": {"n": message_id},
        }
        stored.update({key: value for key, value in extra.items() if value is not None})
        self.messages.append(stored)
        return stored

    def say(self, role: str, content: str, *, name: str | None = None) -> Window:
        self.units.append([expected_chat(self._stored(role, content, name=name))])
        return self

    def call(
        self,
        content: str,
        functions: list[tuple[str, str]],
        answers: list[tuple[int, str]],
        *,
        role: str = "assistant",
    ) -> Window:
        """An assistant message calling ``functions`` (name, JSON arguments), then tool
        results answering the calls at the given indexes, in that order."""
        ids = []
        calls = []
        for function, arguments in functions:
            self._calls += 1
            ids.append(f"call_{self._calls}")
            calls.append(
                {"id": ids[-1], "type": "function", "function": {"name": function, "arguments": arguments}}
            )
        unit = [expected_chat(self._stored(role, content, tool_calls=calls))]
        for index, result in answers:
            unit.append(expected_chat(self._stored("tool", result, tool_call_id=ids[index])))
        self.units.append(unit)
        return self

    def open_calls(self) -> set[str]:
        """The calls a tool message appended now would answer: those of the last unit when
        it is a call (tool messages after it, orphans included, keep them open)."""
        last = self.units[-1][0] if self.units else {}
        return {call["id"] for call in last.get("tool_calls", [])}

    def orphan(self, content: str, call_id: str = "call_folded_away") -> Window:
        """A tool result whose call is not in the window (or not right before it)."""
        assert call_id not in self.open_calls(), "that would answer the call before it"
        self._stored("tool", content, tool_call_id=call_id)
        self.orphans += 1
        return self


@dataclass(frozen=True)
class Expected:
    messages: list[dict[str, Any]]
    tokens: int
    omitted: int
    kept_units: int
    system: dict[str, Any] | None


def expected_context(
    window: Window,
    *,
    encoding: str,
    max_tokens: int,
    system: list[str | None],
) -> Expected:
    """api.md §8 as a reference: the first fitting system content among ``system`` (the
    candidates in order of preference), then the longest run of the newest units that
    fits the rest of the budget."""
    used = REPLY_TOKENS
    head: list[dict[str, Any]] = []
    for content in system:
        if content is None:
            break
        candidate = {"role": "system", "content": content}
        cost = message_cost(candidate, encoding)
        if used + cost <= max_tokens:
            head, used = [candidate], used + cost
            break
    kept: list[list[dict[str, Any]]] = []
    for unit in reversed(window.units):
        cost = sum(message_cost(m, encoding) for m in unit)
        if used + cost > max_tokens:
            break
        kept.insert(0, unit)
        used += cost
    dropped = window.units[: len(window.units) - len(kept)]
    messages = head + [m for unit in kept for m in unit]
    return Expected(
        messages=messages,
        tokens=used if messages else 0,
        omitted=window.orphans + sum(len(unit) for unit in dropped),
        kept_units=len(kept),
        system=head[0] if head else None,
    )
