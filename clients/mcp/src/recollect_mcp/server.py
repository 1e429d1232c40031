"""The MCP server: one tenant's Recollect memory as five tools.

Each tool is one call of the Python SDK (``recollect_client``). A failure the Recollect
server reports becomes an MCP tool error (``is_error``) whose text carries the server's
error code and message; nothing else of the exception reaches the client.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Annotated, Any, Literal, TypedDict

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field
from recollect_client import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AsyncRecollect,
    RecollectError,
)

from recollect_mcp import __version__

INSTRUCTIONS = """\
Long-term chat memory kept by a Recollect server for one tenant. A session is one
conversation, named by an id you choose. Store each turn with append_messages; before
answering, call get_context (with the user's question as `query`) for the recent messages,
the running summary of older ones and the older messages relevant to the question. Use
search_memory to look across all sessions, list_sessions to find them, get_memory for a
session's raw window and summary."""

SessionId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=256,
        description="The conversation's id (any text without control characters, e.g. 'chat-42').",
    ),
]


class Message(BaseModel):
    """One message to store."""

    model_config = ConfigDict(extra="forbid")

    role: str = Field(
        min_length=1,
        max_length=256,
        description="Who spoke: 'user', 'assistant', 'system', 'tool', or any speaker name "
        "('Human'/'AI' as LangChain writes them); stored as given.",
    )
    content: str = Field(description="The message text.")
    metadata: dict[str, Any] | None = Field(
        None,
        description="Optional JSON object kept with the message; search_memory can filter on its keys.",
    )


class AppendResult(TypedDict):
    status: str
    message_ids: list[int]


class MemoryResult(TypedDict):
    messages: list[dict[str, Any]]
    context: str | None
    tokens: int
    pending_summary: int
    pending_index: int


class ContextResult(TypedDict):
    messages: list[dict[str, Any]]
    tokens: int
    model: str
    encoding: str
    omitted: int


class SearchResult(TypedDict):
    hits: list[dict[str, Any]]


class SessionsResult(TypedDict):
    sessions: list[str]
    page: int
    size: int


@contextmanager
def server_errors() -> Iterator[None]:
    """Turn the SDK's errors into tool errors carrying the server's code and message.

    ``from None``: the SDK's traceback is of no use to the agent; the text is all an MCP
    client gets of a ToolError, and the SDK keeps URLs (which may hold a path-scoped key)
    out of it.
    """
    try:
        yield
    except RecollectError as error:
        raise ToolError(describe(error)) from None


def describe(error: RecollectError) -> str:
    if isinstance(error, APIStatusError):
        return f"Recollect error {error.code} (HTTP {error.status_code}): {error.message}"
    # No answer from the server, so no code of its own: name the failure in the same style.
    if isinstance(error, APITimeoutError):
        code = "timeout"
    elif isinstance(error, APIConnectionError):
        code = "connection_error"
    else:
        code = "client_error"
    return f"Recollect error {code}: {error}"


def compact(model: BaseModel) -> dict[str, Any]:
    """A message as JSON without its unset optional fields (no name, no tool calls...)."""
    return model.model_dump(mode="json", exclude_none=True)


def _client(ctx: Context[AsyncRecollect, Any]) -> AsyncRecollect:
    return ctx.request_context.lifespan_context


async def append_messages(
    session_id: SessionId,
    messages: Annotated[
        list[Message],
        Field(min_length=1, max_length=100, description="The messages to append, oldest first."),
    ],
    ctx: Context[AsyncRecollect, Any],
) -> AppendResult:
    """Store messages at the end of a session's history (the session is created if new).

    Returns the ids the server gave them. Older messages are summarized automatically and
    stay searchable."""
    body = [m.model_dump(exclude_none=True) for m in messages]
    with server_errors():
        # The SDK sends an Idempotency-Key and keeps it across its retries: a resent
        # append stores the messages once.
        result = await _client(ctx).append(session_id, body)
    return {"status": result.status, "message_ids": result.message_ids}


async def get_context(
    session_id: SessionId,
    ctx: Context[AsyncRecollect, Any],
    query: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=8192,
            description="What the next answer is about (usually the user's latest message): "
            "the older messages most relevant to it are added. Omit for recent messages and summary only.",
        ),
    ] = None,
    model: Annotated[
        str,
        Field(min_length=1, max_length=200, description="Chat model the context is for; sets the tokenizer."),
    ] = "gpt-4o",
    max_tokens: Annotated[
        int,
        Field(ge=1, le=1_000_000, description="Token budget; the oldest recent messages are left out first."),
    ] = 4000,
    k: Annotated[
        int, Field(ge=1, le=50, description="How many relevant older messages to add with a query.")
    ] = 5,
) -> ContextResult:
    """The context to give a chat model for a session, in OpenAI chat format, oldest first.

    messages[0] is a system message with the summary of the conversation so far (and, with a
    query, the relevant earlier messages); then the most recent messages that fit the budget.
    `omitted` counts recent messages left out."""
    with server_errors():
        context = await _client(ctx).get_context(
            session_id, model=model, max_tokens=max_tokens, query=query, k=k
        )
    return {
        "messages": context.openai_messages(),
        "tokens": context.tokens,
        "model": context.model,
        "encoding": context.encoding,
        "omitted": context.omitted,
    }


async def search_memory(
    query: Annotated[str, Field(min_length=1, max_length=8192, description="What to look for.")],
    ctx: Context[AsyncRecollect, Any],
    session_id: Annotated[
        str | None,
        Field(min_length=1, max_length=256, description="Search only this session; omit to search all."),
    ] = None,
    k: Annotated[int, Field(ge=1, le=50, description="How many messages to return at most.")] = 10,
    mode: Annotated[
        Literal["auto", "keyword", "vector", "hybrid"],
        Field(
            description="'keyword' (BM25), 'vector' or 'hybrid' (need embeddings on the server); "
            "'auto' picks the best available."
        ),
    ] = "auto",
    metadata: Annotated[
        dict[str, Any] | None,
        Field(description="Only messages whose metadata holds every one of these key/value pairs."),
    ] = None,
) -> SearchResult:
    """Search every stored message of the tenant's sessions (recent and long summarized).

    Returns the closest messages first, each with its session_id, role, content, id,
    created_at and dist (0 = identical, larger = less relevant)."""
    with server_errors():
        hits = await _client(ctx).search(
            query,
            k=k,
            mode=mode,
            session_ids=[session_id] if session_id else None,
            metadata=metadata,
        )
    return {"hits": [compact(hit) for hit in hits]}


async def list_sessions(
    ctx: Context[AsyncRecollect, Any],
    page: Annotated[int, Field(ge=1, le=1_000_000, description="Page number, from 1.")] = 1,
    size: Annotated[int, Field(ge=1, le=100, description="Sessions per page.")] = 10,
) -> SessionsResult:
    """List the tenant's session ids, least recently written first (the most recent are on the last page)."""
    with server_errors():
        sessions = await _client(ctx).list_sessions(page=page, size=size)
    return {"sessions": sessions, "page": page, "size": size}


async def get_memory(session_id: SessionId, ctx: Context[AsyncRecollect, Any]) -> MemoryResult:
    """Read a session's memory as stored: the recent messages newest first (with ids and
    timestamps), the running summary of older ones (`context`, null if none), the LLM
    tokens spent summarizing, and how many messages await summary or indexing. An unknown
    session reads as empty."""
    with server_errors():
        memory = await _client(ctx).get_memory(session_id)
    return {
        "messages": [compact(message) for message in memory.messages],
        "context": memory.context,
        "tokens": memory.tokens,
        "pending_summary": memory.pending_summary,
        "pending_index": memory.pending_index,
    }


_READ = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
TOOLS: list[tuple[Callable[..., Any], str, ToolAnnotations]] = [
    (
        append_messages,
        "Append messages to a session",
        ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
        ),
    ),
    (get_context, "Get a session's context for a model", _READ),
    (search_memory, "Search the memory", _READ),
    (list_sessions, "List sessions", _READ),
    (get_memory, "Read a session's memory", _READ),
]


def build_server(
    make_client: Callable[[], AsyncRecollect], *, log_level: str = "WARNING"
) -> MCPServer[AsyncRecollect]:
    """The MCP server; ``make_client`` is called once per run (per stdio connection, or
    once for the HTTP server's lifetime) and the client closed when it ends."""

    @asynccontextmanager
    async def lifespan(_: MCPServer[AsyncRecollect]) -> AsyncIterator[AsyncRecollect]:
        client = make_client()
        try:
            yield client
        finally:
            await client.close()

    server: MCPServer[AsyncRecollect] = MCPServer(
        "recollect",
        title="Recollect memory",
        instructions=INSTRUCTIONS,
        version=__version__,
        lifespan=lifespan,
        log_level=log_level,  # type: ignore[arg-type]  # checked by config
    )
    for fn, title, hints in TOOLS:
        # cleandoc: the docstring's indentation would otherwise reach the agent's prompt.
        description = inspect.cleandoc(fn.__doc__ or "")
        server.add_tool(fn, title=title, description=description, annotations=hints, structured_output=True)
    return server
