"""The five tools, called through the mcp SDK's own stdio client against a live Recollect:
what an agent sees when it lists them, what each returns, and how failures come back.
Cases that need a configuration of their own (a bad key, a path-scoped URL, no server) run
the same server in process over the SDK's in-memory transport."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from devtools.processes import free_port
from mcp import ClientSession
from mcp_live import FACTS, TOOLS, Recollect, call, failure, in_process, stdio_session

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
async def mcp(recollect: Recollect, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ClientSession]:
    """One stdio server process for the module, configured with the tenant's key."""
    async with stdio_session(recollect.env(), tmp_path_factory.mktemp("mcp") / "stderr.log") as session:
        yield session


async def test_lists_five_described_tools_with_typed_parameters(mcp: ClientSession) -> None:
    tools = {tool.name: tool for tool in (await mcp.list_tools()).tools}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert tool.description and len(tool.description) > 40, tool.name
        assert tool.output_schema is not None, tool.name
        assert "ctx" not in tool.input_schema.get("properties", {}), "the context parameter is no argument"
    append = tools["append_messages"].input_schema
    assert set(append["required"]) == {"session_id", "messages"}
    assert append["properties"]["messages"]["type"] == "array"
    search = tools["search_memory"].input_schema
    assert search["required"] == ["query"]
    assert search["properties"]["k"]["maximum"] == 50
    read, write = tools["get_memory"].annotations, tools["append_messages"].annotations
    assert read is not None and read.read_only_hint
    assert write is not None and not write.read_only_hint


async def test_append_messages_returns_ids_and_get_memory_reads_them_newest_first(mcp: ClientSession) -> None:
    appended = await call(
        mcp,
        "append_messages",
        session_id="append:1",
        messages=[
            {"role": "user", "content": "Ship on the 14th?", "metadata": {"channel": "web"}},
            {"role": "assistant", "content": "Yes."},
        ],
    )
    assert appended == {"status": "Ok", "message_ids": [1, 2]}
    memory = await call(mcp, "get_memory", session_id="append:1")
    assert [(m["role"], m["content"]) for m in memory["messages"]] == [
        ("assistant", "Yes."),
        ("user", "Ship on the 14th?"),
    ]
    assert memory["messages"][1]["metadata"] == {"channel": "web"}
    assert memory["context"] is None and memory["tokens"] == 0


async def test_get_memory_of_an_unknown_session_is_empty(mcp: ClientSession) -> None:
    memory = await call(mcp, "get_memory", session_id="never-written")
    assert (memory["messages"], memory["context"], memory["tokens"]) == ([], None, 0)


async def test_get_context_holds_the_summary_relevant_older_messages_and_the_recent_ones(
    mcp: ClientSession, facts: str
) -> None:
    context = await call(mcp, "get_context", session_id=facts, query="when does the release ship?", k=1)
    system, *recent = context["messages"]
    assert system["role"] == "system"
    assert FACTS[0] in system["content"], "the archived fact relevant to the query is in the system message"
    assert recent and [m["content"] for m in recent] == FACTS[-len(recent) :]
    assert all(m["role"] == "user" for m in recent)  # "Human" in OpenAI's terms
    assert context["model"] == "gpt-4o" and context["encoding"] == "o200k_base"
    assert 0 < context["tokens"] <= 4000


async def test_get_context_within_a_small_budget_leaves_out_the_oldest_messages(
    mcp: ClientSession, facts: str
) -> None:
    roomy = await call(mcp, "get_context", session_id=facts, max_tokens=4000)
    tight = await call(mcp, "get_context", session_id=facts, max_tokens=roomy["tokens"] - 1)
    assert tight["omitted"] > roomy["omitted"]
    assert tight["tokens"] < roomy["tokens"]


async def test_search_memory_finds_messages_across_sessions_and_within_one(
    mcp: ClientSession, facts: str
) -> None:
    everywhere = (await call(mcp, "search_memory", query="tuna", k=5))["hits"]
    assert {hit["session_id"] for hit in everywhere} == {facts}
    assert {hit["content"] for hit in everywhere} == {FACTS[1], FACTS[7]}
    assert all(set(hit) >= {"role", "content", "id", "created_at", "dist"} for hit in everywhere)
    assert (await call(mcp, "search_memory", query="tuna", session_id="append:1"))["hits"] == []


async def test_list_sessions_pages_through_the_tenants_sessions(mcp: ClientSession, facts: str) -> None:
    await call(mcp, "append_messages", session_id="listed", messages=[{"role": "user", "content": "hi"}])
    listed = await call(mcp, "list_sessions", size=100)
    assert {facts, "listed"} <= set(listed["sessions"])
    assert listed["sessions"][-1] == "listed", "most recently written last"
    first = await call(mcp, "list_sessions", page=1, size=1)
    assert first == {"sessions": listed["sessions"][:1], "page": 1, "size": 1}


async def test_a_server_error_is_a_tool_error_with_its_code_and_message(mcp: ClientSession) -> None:
    # Vector search without embeddings configured: the server's 400, not a crash.
    message = await failure(mcp, "search_memory", query="tuna", mode="vector")
    assert "embeddings_not_configured" in message and "400" in message


async def test_arguments_outside_the_schema_are_refused(mcp: ClientSession) -> None:
    assert "k" in await failure(mcp, "search_memory", query="tuna", k=0)
    assert "content" in await failure(mcp, "append_messages", session_id="x", messages=[{"role": "user"}])


async def test_a_bad_api_key_is_a_tool_error_with_code_unauthorized(recollect: Recollect) -> None:
    async with in_process(recollect.env(RECOLLECT_API_KEY="rk_not-a-key")) as session:
        message = await failure(session, "list_sessions")
    assert "unauthorized" in message and "401" in message
    assert "rk_not-a-key" not in message


async def test_an_unreachable_server_is_a_tool_error_with_code_connection_error() -> None:
    env = {"RECOLLECT_URL": f"http://127.0.0.1:{free_port()}", "RECOLLECT_API_KEY": "rk_x"}
    async with in_process(env | {"RECOLLECT_MAX_RETRIES": "0"}) as session:
        assert "Recollect error connection_error" in await failure(session, "get_memory", session_id="s")


async def test_a_path_scoped_key_in_the_url_is_enough(recollect: Recollect) -> None:
    async with in_process({"RECOLLECT_URL": f"{recollect.url}/k/{recollect.api_key}"}) as session:
        assert "sessions" in await call(session, "list_sessions")
