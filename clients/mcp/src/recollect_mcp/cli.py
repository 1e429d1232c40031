"""The ``recollect-mcp`` command: configuration, the Recollect client, the transport."""

from __future__ import annotations

import hmac
import json
import sys
from collections.abc import Sequence
from typing import Any

from recollect_client import AsyncRecollect

from recollect_mcp.config import Config, load_config, redact
from recollect_mcp.server import build_server

# ASGI's callable types, spelled out: the ones in starlette.types are not worth a dependency.
Scope = dict[str, Any]
ASGIApp = Any


def make_client(config: Config) -> AsyncRecollect:
    # Unset options are left out so the SDK's own defaults apply.
    options: dict[str, Any] = {}
    if config.timeout is not None:
        options["timeout"] = config.timeout
    if config.max_retries is not None:
        options["max_retries"] = config.max_retries
    return AsyncRecollect(config.url, api_key=config.api_key, **options)


class BearerToken:
    """ASGI middleware: HTTP requests must carry ``Authorization: Bearer <token>``.

    The MCP endpoint acts with the tenant's API key on behalf of whoever reaches it, so
    once it listens beyond loopback it needs a credential of its own. The error shape is
    Recollect's."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not self._authorized(scope):
            body = json.dumps(
                {"error": {"code": "unauthorized", "message": "missing or wrong bearer token"}}
            ).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"www-authenticate", b"Bearer"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                scheme, _, credentials = value.partition(b" ")
                # The scheme is case-insensitive (RFC 9110 §11.1); the token is compared in
                # constant time, so timing does not tell how much of a guess was right.
                return scheme.lower() == b"bearer" and hmac.compare_digest(credentials.strip(), self.token)
        return False


def serve_http(config: Config) -> None:
    import uvicorn  # only the HTTP transport needs it

    server = build_server(lambda: make_client(config), log_level=config.log_level)
    app: ASGIApp = server.streamable_http_app(streamable_http_path=config.path, host=config.host)
    if config.http_token:
        app = BearerToken(app, config.http_token)
    print(
        f"recollect-mcp: memory of {redact(config.url)} on http://{config.host}:{config.port}{config.path}",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(
        app,
        host=config.host,
        port=config.port,
        log_level=config.log_level.lower(),
        # An MCP client may hold an SSE stream open indefinitely: a stop must not wait on it.
        timeout_graceful_shutdown=5,
    )


def main(argv: Sequence[str] | None = None) -> int:
    config = load_config(argv)
    try:
        if config.transport == "stdio":
            # stdout carries the protocol: nothing else may be printed there.
            build_server(lambda: make_client(config), log_level=config.log_level).run("stdio")
        else:
            serve_http(config)
    except KeyboardInterrupt:
        pass
    return 0
