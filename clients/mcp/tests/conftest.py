"""A live Recollect for the MCP server to talk to: a private redis-server on a free port,
the app served over HTTP from a thread, one tenant created through the admin API, and a
session with enough history that part of it is summarized, archived and indexed.

Search runs in keyword mode (BM25 in plain Redis) and the summarizer is the extractive
one: no LLM and no network.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest
from app import create_app
from config import load_settings
from devtools.processes import RedisServer
from mcp_live import FACTS, Recollect, wait_until
from werkzeug.serving import make_server

ADMIN_TOKEN = "mcp-test-admin-token-0123456789"
_ENV_PREFIXES = ("RECOLLECT_", "MOTORHEAD_", "OPENAI_", "AZURE_")


@pytest.fixture(scope="session")
def recollect(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recollect]:
    redis = RedisServer(tmp_path_factory.mktemp("redis")).start()
    # The developer's own RECOLLECT_*/OPENAI_* variables must not reach the settings
    # (pydantic-settings reads the environment under the explicit values).
    with pytest.MonkeyPatch.context() as env:
        for name in list(os.environ):
            if name.startswith(_ENV_PREFIXES) or name == "REDIS_URL":
                env.delenv(name)
        settings = load_settings(
            redis_url=redis.url,
            admin_token=ADMIN_TOKEN,
            summarizer="extractive",
            window_size=4,
            sweep_interval_seconds=0.05,
            index_sweep_interval_seconds=0.05,
            rate_limit="100000/second",
        )
    app = create_app(settings)
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, name="recollect-http", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{http.server_port}"
    try:
        created = Recollect(url, ADMIN_TOKEN).call("POST", "/admin/tenants", {"id": "mcp-test"})
        yield Recollect(url, created["api_key"])
    finally:
        http.shutdown()
        thread.join(timeout=5)
        app.extensions["recollect"].shutdown(wait=True)
        redis.stop()


@pytest.fixture(scope="session")
def facts(recollect: Recollect) -> str:
    """A session whose oldest facts have been folded into the summary (so they live in the
    archive) and whose every message is indexed; its id."""
    session = "facts:2026-12-02T10:00"
    recollect.call(
        "POST", f"/sessions/{session}/memory", {"messages": [{"role": "Human", "content": f} for f in FACTS]}
    )

    def settled() -> bool:
        memory = recollect.call("GET", f"/sessions/{session}/memory")
        return memory["context"] is not None and not memory["pending_summary"] and not memory["pending_index"]

    wait_until(settled)
    return session


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    # Module scope, as anyio's own default: a module shares one MCP connection.
    return "asyncio"
