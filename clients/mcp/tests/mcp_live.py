"""Helpers shared by the MCP server's tests: the live Recollect handle, starting the MCP
server over stdio with the mcp SDK's own client, and reading tool results.

A module of its own (not conftest.py): the repository's other suites have conftest.py
files outside packages too, so ``import conftest`` could find theirs.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp import Client, ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import CallToolResult, TextContent

from recollect_mcp.cli import make_client
from recollect_mcp.config import load_config
from recollect_mcp.server import build_server

# Enough facts that a window of 4 folds the first ones into the summary and the archive.
FACTS = [
    "The release ships on the fourteenth of March",
    "My cat is called Miso and she likes tuna",
    "The database migration needs a maintenance window",
    "We picked Postgres over MySQL for the billing service",
    "Lunch on Friday is at the Thai place",
    "The staging cluster runs out of disk every week",
    "The on-call rotation changes every Monday",
    "Our tuna sandwich order was wrong again",
]
TOOLS = {"append_messages", "get_context", "search_memory", "list_sessions", "get_memory"}


@dataclass(frozen=True)
class Recollect:
    """A running Recollect and one tenant's credentials."""

    url: str
    api_key: str

    def call(self, method: str, path: str, body: Any = None, key: str | None = None) -> Any:
        request = urllib.request.Request(  # noqa: S310 - a local http URL of the test's own
            self.url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {key or self.api_key}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - as above
            return json.loads(response.read())

    def env(self, **extra: str) -> dict[str, str]:
        """The MCP server's environment: this URL and key, nothing of the developer's."""
        return {"RECOLLECT_URL": self.url, "RECOLLECT_API_KEY": self.api_key, **extra}


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the server"
        time.sleep(0.05)


def console_script() -> str:
    """The installed ``recollect-mcp`` command, beside this interpreter."""
    path = Path(sys.executable).with_name("recollect-mcp")
    assert path.exists(), "recollect-mcp is not installed: pip install -e clients/mcp"
    return str(path)


@asynccontextmanager
async def stdio_session(env: dict[str, str], errlog: Path) -> AsyncIterator[ClientSession]:
    """``recollect-mcp`` (stdio, the default transport) as a subprocess, initialized."""
    server = StdioServerParameters(command=console_script(), env=env)
    # The server's stderr goes to a file: a pipe nobody reads could fill and block it.
    with errlog.open("w") as stderr:
        async with (
            stdio_client(server, errlog=stderr) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            yield session


@asynccontextmanager
async def in_process(env: dict[str, str]) -> AsyncIterator[Client]:
    """The server configured from ``env`` as the command would be, run inside the test
    process over the SDK's in-memory transport: for the cases that need their own
    configuration, without starting one more process each."""
    config = load_config([], env)
    async with Client(build_server(lambda: make_client(config))) as client:
        yield client


def text(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


async def call(session: ClientSession | Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """The structured result of a call that must succeed."""
    result = await session.call_tool(tool, arguments)
    assert isinstance(result, CallToolResult)
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    return result.structured_content


async def failure(session: ClientSession | Client, tool: str, **arguments: Any) -> str:
    """The text of a call that must fail as a tool error, never with a traceback."""
    result = await session.call_tool(tool, arguments)
    assert isinstance(result, CallToolResult)
    assert result.is_error, result
    message = text(result)
    assert "Traceback" not in message and 'File "' not in message, message
    return message
