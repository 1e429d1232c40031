"""Assembling a chat model's context within a token budget, as a pure function.

Tokens are counted the way OpenAI's cookbook counts chat messages: 3 per message, the
tokens of each of its string fields (``role``, ``content``, ``name``, ``tool_call_id``),
1 more when it has a ``name``, and 3 for the reply. The cookbook has no rule for
``tool_calls``; their JSON is counted as one more string field, so a budget is never
exceeded by the arguments of a call.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from app.domain import tokens

REPLY_TOKENS = 3
MESSAGE_TOKENS = 3
_O200K_FAMILIES = re.compile(r"^(?:gpt-4o|chatgpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|o\d)", re.IGNORECASE)
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_ROLES = {
    "Human": "user",
    "human": "user",
    "user": "user",
    "AI": "assistant",
    "ai": "assistant",
    "assistant": "assistant",
    "system": "system",
    "tool": "tool",
}


def encoding_for_model(model: str) -> str:
    """``o200k_base`` for the gpt-4o, gpt-4.1, gpt-5 and o-series families (fine-tuned ones,
    ``ft:<base>:<org>::<id>``, included), else ``cl100k_base``."""
    name = model.strip()
    if name.startswith("ft:"):
        name = name[3:]
    return "o200k_base" if _O200K_FAMILIES.match(name) else "cl100k_base"


def chat_message(message: dict[str, Any]) -> dict[str, Any]:
    """A stored message (the API's JSON) in OpenAI's chat format."""
    stored_role = str(message.get("role", ""))
    role = _ROLES.get(stored_role, "user")
    chat: dict[str, Any] = {"role": role, "content": message.get("content", "")}
    name = message.get("name")
    if name is None and stored_role not in _ROLES:
        name = stored_role  # another speaker: a user message that says who
    if name is not None and role != "tool":  # OpenAI's tool messages take no name
        # OpenAI accepts names of 1-64 characters of [A-Za-z0-9_-] only.
        chat["name"] = _NAME_UNSAFE.sub("_", str(name))[:64] or "_"
    if role == "assistant" and message.get("tool_calls"):
        chat["tool_calls"] = message["tool_calls"]
    if role == "tool" and message.get("tool_call_id") is not None:
        chat["tool_call_id"] = message["tool_call_id"]
    return chat


def message_tokens(chat: dict[str, Any], encoding: str) -> int:
    count = MESSAGE_TOKENS
    for field in ("role", "content", "name", "tool_call_id"):
        value = chat.get(field)
        if isinstance(value, str):
            count += tokens.count_tokens(value, encoding)
    if "name" in chat:
        count += 1
    if chat.get("tool_calls"):
        count += tokens.count_tokens(orjson.dumps(chat["tool_calls"]).decode(), encoding)
    return count


@dataclass(frozen=True, slots=True)
class Context:
    messages: list[dict[str, Any]]
    tokens: int
    model: str
    encoding: str
    omitted: int


def _units(chats: list[dict[str, Any]]) -> tuple[list[list[dict[str, Any]]], int]:
    """The window as units that are kept or left out whole: an assistant message with
    ``tool_calls`` together with the ``tool`` messages answering it; any other message
    alone. Tool results whose call is no longer in the window are dropped (counted)."""
    units: list[list[dict[str, Any]]] = []
    orphans = 0
    open_calls: set[str] = set()
    for chat in chats:
        if chat["role"] == "tool":
            if chat.get("tool_call_id") in open_calls and units:
                units[-1].append(chat)
            else:
                orphans += 1
            continue
        open_calls = {str(call.get("id")) for call in chat.get("tool_calls") or ()}
        units.append([chat])
    return units, orphans


def system_content(summary: str | None, relevant: Sequence[dict[str, Any]]) -> str | None:
    parts = []
    if summary:
        parts.append(f"Summary of the conversation so far:\n{summary}")
    if relevant:
        lines = [f"[{m.get('created_at', '')}] {m.get('role', '')}: {m.get('content', '')}" for m in relevant]
        parts.append("Relevant earlier messages:\n" + "\n".join(lines))
    return "\n\n".join(parts) or None


def assemble(
    summary: str | None,
    window: Sequence[dict[str, Any]],
    *,
    model: str,
    max_tokens: int,
    relevant: Sequence[dict[str, Any]] = (),
) -> Context:
    """The context for ``model`` within ``max_tokens``, oldest first.

    Priority: the summary, then the relevant archived messages (most relevant first), then
    the newest window messages — a contiguous run ending with the newest, so the oldest are
    dropped first and nothing in between goes missing.
    """
    encoding = encoding_for_model(model)
    used = REPLY_TOKENS
    system: dict[str, Any] | None = None
    # The largest prefix of the relevant messages that fits with the summary.
    for keep in range(len(relevant), -1, -1):
        content = system_content(summary, relevant[:keep])
        if content is None:
            break
        candidate = {"role": "system", "content": content}
        cost = message_tokens(candidate, encoding)
        if used + cost <= max_tokens:
            system, used = candidate, used + cost
            break
    units, omitted = _units([chat_message(m) for m in window])
    kept: list[list[dict[str, Any]]] = []
    for unit in reversed(units):
        cost = sum(message_tokens(chat, encoding) for chat in unit)
        if used + cost > max_tokens:
            break
        kept.append(unit)
        used += cost
    omitted += sum(len(unit) for unit in units[: len(units) - len(kept)])
    messages = ([system] if system is not None else []) + [chat for unit in reversed(kept) for chat in unit]
    return Context(messages, used if messages else 0, model, encoding, omitted)
