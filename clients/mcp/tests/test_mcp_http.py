"""The streamable HTTP transport: ``recollect-mcp --transport streamable-http`` as a real
process, reached with the mcp SDK's own streamable HTTP client, behind its bearer token."""

from __future__ import annotations

import subprocess
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx2
import pytest
from devtools.processes import free_port, wait_for_port
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp_live import TOOLS, Recollect, call, console_script, failure

pytestmark = pytest.mark.anyio

TOKEN = "mcp-http-token-0123456789abcdef"


@pytest.fixture(scope="module")
def endpoint(recollect: Recollect, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The MCP endpoint's URL, served by its own process for the module."""
    port = free_port()
    log = tmp_path_factory.mktemp("mcp-http") / "stderr.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [console_script(), "--transport", "streamable-http", "--host", "127.0.0.1", "--port", str(port)],
            env=recollect.env(RECOLLECT_MCP_TOKEN=TOKEN),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        try:
            wait_for_port(port, timeout=20)
        except RuntimeError:
            pytest.fail(f"recollect-mcp did not listen:\n{log.read_text()}")
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@asynccontextmanager
async def http_session(url: str, token: str = TOKEN) -> AsyncIterator[ClientSession]:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as client,
        streamable_http_client(url, http_client=client) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


async def test_serves_the_tools_over_streamable_http(endpoint: str) -> None:
    async with http_session(endpoint) as session:
        assert {tool.name for tool in (await session.list_tools()).tools} == TOOLS
        appended = await call(
            session,
            "append_messages",
            session_id="over-http",
            messages=[{"role": "user", "content": "hello"}],
        )
        assert appended["message_ids"] == [1]
        memory = await call(session, "get_memory", session_id="over-http")
        assert [m["content"] for m in memory["messages"]] == ["hello"]
        assert "embeddings_not_configured" in await failure(
            session, "search_memory", query="x", mode="vector"
        )


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", f"Basic {TOKEN}"])
def test_refuses_requests_without_its_bearer_token(endpoint: str, header: str | None) -> None:
    request = urllib.request.Request(endpoint, method="POST", data=b"{}")  # noqa: S310 - local test URL
    request.add_header("Content-Type", "application/json")
    if header:
        request.add_header("Authorization", header)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)  # noqa: S310 - local test URL
    assert refused.value.code == 401
    assert refused.value.headers["WWW-Authenticate"] == "Bearer"
    assert b'"unauthorized"' in refused.value.read()
