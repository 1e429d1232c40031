"""LangChain chat history backed by Recollect: ``pip install 'recollect-client[langchain]'``.

    from recollect_client import Recollect
    from recollect_client.langchain import RecollectChatMessageHistory

    client = Recollect("http://127.0.0.1:8080", api_key="rk_...")
    history = RecollectChatMessageHistory("chat-42", client)

Roles map both ways: ``HumanMessage`` ↔ ``user`` (``Human``/``human`` read too, as
MotorHead's LangChain client writes them), ``AIMessage`` ↔ ``assistant`` (``AI``/``ai``) with
its ``tool_calls`` in OpenAI's format, ``SystemMessage`` ↔ ``system``, ``ToolMessage`` ↔
``tool`` with ``tool_call_id``, and ``ChatMessage`` keeps its own role. A message's
Recollect ``metadata`` is ``additional_kwargs["metadata"]``; read messages carry the
Recollect id as ``id`` and ``created_at`` in ``response_metadata``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from recollect_client.async_client import AsyncRecollect
from recollect_client.client import Recollect
from recollect_client.models import Message, StoredMessage, ToolCall, ToolFunction

_HUMAN = frozenset({"user", "human"})
_AI = frozenset({"assistant", "ai"})


def _text(content: str | list[Any]) -> str:
    """Recollect stores text: content blocks keep their text parts (images and the like
    have no place in a text memory)."""
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
    return "".join(parts)


def _openai_tool_calls(message: AIMessage) -> list[ToolCall] | None:
    calls = [
        ToolCall(
            # The server requires an id; a call without one could not be answered anyway.
            id=call.get("id") or f"call_{uuid.uuid4().hex}",
            function=ToolFunction(name=call["name"], arguments=json.dumps(call.get("args", {}))),
        )
        for call in message.tool_calls
    ]
    # Calls whose arguments did not parse are kept as the model sent them.
    calls += [
        ToolCall(
            id=call.get("id") or f"call_{uuid.uuid4().hex}",
            function=ToolFunction(name=call.get("name") or "unknown", arguments=call.get("args") or ""),
        )
        for call in message.invalid_tool_calls
    ]
    return calls or None


def to_recollect(message: BaseMessage, metadata: Mapping[str, Any] | None = None) -> Message:
    """A LangChain message as a Recollect message; ``metadata`` is laid under the message's own."""
    if isinstance(message, HumanMessage):
        role = "user"
    elif isinstance(message, AIMessage):
        role = "assistant"
    elif isinstance(message, SystemMessage):
        role = "system"
    elif isinstance(message, ToolMessage):
        role = "tool"
    elif isinstance(message, ChatMessage):
        role = message.role
    else:
        role = message.type
    own = message.additional_kwargs.get("metadata")
    merged = {**(metadata or {}), **(own if isinstance(own, dict) else {})}
    return Message(
        role=role,
        content=_text(message.content),
        metadata=merged or None,
        name=message.name or None,
        tool_call_id=message.tool_call_id if isinstance(message, ToolMessage) else None,
        tool_calls=_openai_tool_calls(message) if isinstance(message, AIMessage) else None,
    )


def _langchain_tool_calls(calls: list[ToolCall]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    parsed, invalid = [], []
    for call in calls:
        try:
            args = json.loads(call.function.arguments) if call.function.arguments else {}
        except ValueError:
            args = None
        if isinstance(args, dict):
            parsed.append({"name": call.function.name, "args": args, "id": call.id, "type": "tool_call"})
        else:
            invalid.append(
                {
                    "name": call.function.name,
                    "args": call.function.arguments,
                    "id": call.id,
                    "error": "arguments are not a JSON object",
                    "type": "invalid_tool_call",
                }
            )
    return parsed, invalid


def from_recollect(message: StoredMessage) -> BaseMessage:
    """A stored Recollect message as a LangChain message."""
    common: dict[str, Any] = {
        "content": message.content,
        "id": str(message.id),
        "response_metadata": {"created_at": message.created_at},
    }
    if message.metadata is not None:
        common["additional_kwargs"] = {"metadata": message.metadata}
    if message.name is not None:
        common["name"] = message.name
    role = message.role.lower()
    if role in _HUMAN:
        return HumanMessage(**common)
    if role in _AI:
        parsed, invalid = _langchain_tool_calls(message.tool_calls or [])
        return AIMessage(**common, tool_calls=parsed, invalid_tool_calls=invalid)
    if role == "system":
        return SystemMessage(**common)
    if role == "tool":
        return ToolMessage(**common, tool_call_id=message.tool_call_id or "")
    return ChatMessage(**common, role=message.role)


class RecollectChatMessageHistory(BaseChatMessageHistory):
    """A LangChain chat history stored in a Recollect session.

    ``messages`` is the session's window, oldest first; with ``full_history=True`` it is
    every message (window and archive, paged). The running summary of the messages that left
    the window is :attr:`summary`; with ``summary_as_system_message=True`` it also comes
    first in ``messages`` as a ``SystemMessage`` (not with ``full_history``, which already
    holds everything it summarizes). ``add_messages`` appends in one POST (idempotent under
    retries); ``metadata`` is stored on every message added through this history.

    Pass a shared ``client`` (and, for the async methods, ``async_client``) rather than
    ``base_url``/``api_key``: a client made here is this history's own, with its own
    connection pool (release it with :meth:`close`).
    """

    def __init__(
        self,
        session_id: str,
        client: Recollect | None = None,
        *,
        async_client: AsyncRecollect | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        summary_as_system_message: bool = False,
        full_history: bool = False,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if client is None and async_client is None and base_url is None:
            raise ValueError("give a client, an async_client or a base_url")
        self.session_id = session_id
        self._owns_client = client is None and base_url is not None
        self.client = client if client is not None or base_url is None else Recollect(base_url, api_key)
        self.async_client = async_client
        self.summary_as_system_message = summary_as_system_message
        self.full_history = full_history
        self.metadata = dict(metadata or {})

    def _sync(self) -> Recollect:
        if self.client is None:
            raise RuntimeError("this history has only an async client: use the a* methods")
        return self.client

    def _assemble(self, stored: Sequence[StoredMessage], summary: str | None) -> list[BaseMessage]:
        messages = [from_recollect(m) for m in stored]
        if self.summary_as_system_message and summary and not self.full_history:
            messages.insert(0, SystemMessage(content=summary))
        return messages

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]  # a property, as LangChain's docs show
        """The conversation, oldest first."""
        client = self._sync()
        if self.full_history:
            stored = list(client.iter_history(self.session_id))
            stored.reverse()
            return self._assemble(stored, None)
        memory = client.get_memory(self.session_id)
        return self._assemble(memory.messages[::-1], memory.context)

    async def aget_messages(self) -> list[BaseMessage]:
        if self.async_client is None:
            return await super().aget_messages()
        if self.full_history:
            stored = [m async for m in self.async_client.iter_history(self.session_id)]
            stored.reverse()
            return self._assemble(stored, None)
        memory = await self.async_client.get_memory(self.session_id)
        return self._assemble(memory.messages[::-1], memory.context)

    @property
    def summary(self) -> str | None:
        """The running summary of the messages that left the window (None when none has)."""
        return self._sync().get_memory(self.session_id).context

    async def aget_summary(self) -> str | None:
        if self.async_client is None:
            return self.summary
        return (await self.async_client.get_memory(self.session_id)).context

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Append the messages in one request."""
        if messages:
            self._sync().append(self.session_id, [to_recollect(m, self.metadata) for m in messages])

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        if self.async_client is None:
            await super().aadd_messages(messages)
        elif messages:
            await self.async_client.append(
                self.session_id, [to_recollect(m, self.metadata) for m in messages]
            )

    def clear(self) -> None:
        """Erase the session: its messages, summary and search data."""
        self._sync().delete_memory(self.session_id)

    async def aclear(self) -> None:
        if self.async_client is None:
            await super().aclear()
        else:
            await self.async_client.delete_memory(self.session_id)

    def close(self) -> None:
        """Close the client this history made for itself (a client passed in is left open)."""
        if self._owns_client and self.client is not None:
            self.client.close()
