"""What a failure looks like to the agent, in process: the text of each kind of SDK error,
and the HTTP transport's token check."""

from __future__ import annotations

from typing import Any

import pytest
from recollect_client import APIConnectionError, APITimeoutError, AuthenticationError, RateLimitError

from recollect_mcp.cli import BearerToken
from recollect_mcp.server import describe

pytestmark = pytest.mark.anyio


def test_a_server_error_names_its_code_status_and_message() -> None:
    error = RateLimitError("slow down", status_code=429, code="rate_limited", request_id="req-1")
    assert describe(error) == "Recollect error rate_limited (HTTP 429): slow down"


def test_an_unreachable_server_is_a_connection_error_and_a_slow_one_a_timeout() -> None:
    assert describe(APIConnectionError("request failed: ConnectError: refused")).startswith(
        "Recollect error connection_error: request failed"
    )
    assert describe(APITimeoutError("request failed: ReadTimeout")).startswith("Recollect error timeout:")


def test_the_message_carries_no_key() -> None:
    error = AuthenticationError("invalid API key", status_code=401, code="unauthorized")
    assert describe(error) == "Recollect error unauthorized (HTTP 401): invalid API key"


async def _status(middleware: BearerToken, headers: list[tuple[bytes, bytes]], kind: str = "http") -> int:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    await middleware({"type": kind, "headers": headers}, receive, send)
    return sent[0]["status"]


async def test_the_token_check_passes_only_the_exact_bearer_token() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})

    guarded = BearerToken(app, "s3cret")
    for right in (b"Bearer s3cret", b"bearer s3cret"):
        assert await _status(guarded, [(b"authorization", right)]) == 200
    for wrong in (b"Bearer s3cre", b"Bearer s3cret2", b"Basic s3cret", b"s3cret", b"Bearer"):
        assert await _status(guarded, [(b"authorization", wrong)]) == 401
    assert await _status(guarded, []) == 401
    # Lifespan and other non-HTTP events pass untouched (the app starts and stops through them).
    assert await _status(guarded, [], kind="lifespan") == 200
