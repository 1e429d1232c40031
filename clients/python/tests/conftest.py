"""A live Recollect for the SDK's tests: a private redis-server on a free port and the app
served over real HTTP (werkzeug's threaded server in a thread of this process).

Each test gets a tenant of its own (created through the SDK's admin client), so tests share
one server and one Redis without seeing each other's data.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from recollect_client import Recollect, RecollectAdmin

ADMIN_TOKEN = "sdk-test-admin-token-0123456789"
_ENV_PREFIXES = ("RECOLLECT_", "MOTORHEAD_", "OPENAI_", "AZURE_")


@dataclass
class LiveServer:
    url: str
    app: Flask
    server: BaseWSGIServer

    def has_route(self, rule: str) -> bool:
        return any(r.rule == rule for r in self.app.url_map.iter_rules())


class QuietHandler(WSGIRequestHandler):
    """No access line per request on the test's stderr (the app logs its own)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def serve(redis_url: str, **overrides: Any) -> LiveServer:
    """The app on a free loopback port (port 0: the kernel picks, no race)."""
    from app import create_app
    from config import load_settings

    # The developer's own environment must not leak into the settings under test.
    with pytest.MonkeyPatch.context() as env:
        for name in list(os.environ):
            if name.startswith(_ENV_PREFIXES) or name in ("REDIS_URL", "PORT"):
                env.delenv(name)
        settings = load_settings(
            **{
                "redis_url": redis_url,
                "admin_token": ADMIN_TOKEN,
                "summarizer": "extractive",
                "auth_cache_seconds": 0.2,
                "rate_limit": "100000/second",
                "log_level": "WARNING",
                **overrides,
            }
        )
    app = create_app(settings)
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
    threading.Thread(target=server.serve_forever, name="recollect-sdk-test-server", daemon=True).start()
    return LiveServer(f"http://127.0.0.1:{server.server_port}", app, server)


def stop(live: LiveServer) -> None:
    live.server.shutdown()
    live.server.server_close()
    live.app.extensions["recollect"].shutdown(wait=True)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from devtools.processes import RedisServer

    server = RedisServer(Path(tmp_path_factory.mktemp("sdk-redis"))).start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def live(redis_url: str) -> Iterator[LiveServer]:
    server = serve(redis_url)
    yield server
    stop(server)


@pytest.fixture
def start_server() -> Iterator[Callable[..., LiveServer]]:
    """Extra servers a test needs (another configuration, a dead Redis); stopped after it."""
    started: list[LiveServer] = []

    def start(redis_url: str, **overrides: Any) -> LiveServer:
        started.append(serve(redis_url, **overrides))
        return started[-1]

    yield start
    for server in started:
        stop(server)


@pytest.fixture(scope="session")
def admin_token() -> str:
    return ADMIN_TOKEN


@pytest.fixture(scope="session")
def admin(live: LiveServer) -> Iterator[RecollectAdmin]:
    with RecollectAdmin(live.url, ADMIN_TOKEN) as client:
        yield client


@dataclass
class TenantHandle:
    id: str
    api_key: str
    key_id: str


@pytest.fixture
def make_tenant(admin: RecollectAdmin) -> Callable[..., TenantHandle]:
    def make(**policy: Any) -> TenantHandle:
        tenant_id = f"t-{uuid.uuid4().hex[:12]}"
        created = admin.create_tenant(tenant_id, name="SDK test", policy=policy or None)
        return TenantHandle(tenant_id, created.api_key, created.key_id)

    return make


@pytest.fixture
def tenant(make_tenant: Callable[..., TenantHandle]) -> TenantHandle:
    return make_tenant()


@pytest.fixture
def client(live: LiveServer, tenant: TenantHandle) -> Iterator[Recollect]:
    with Recollect(live.url, tenant.api_key) as sdk:
        yield sdk


class Recording(httpx.BaseTransport):
    """A real transport that records every request and response status, and can fail
    chosen attempts *after* the server answered them (the response is lost on the way
    back), as a dropped connection does."""

    def __init__(self, lose_responses: int = 0) -> None:
        self.inner = httpx.HTTPTransport()
        self.requests: list[httpx.Request] = []
        self.statuses: list[int] = []
        self.lose_responses = lose_responses

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        response = self.inner.handle_request(request)
        self.statuses.append(response.status_code)
        if self.lose_responses > 0:
            self.lose_responses -= 1
            response.read()
            response.close()
            raise httpx.ReadError("connection reset by peer (simulated)", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def recording() -> Callable[..., Recording]:
    return Recording
