"""Path-scoped keys (api.md §9) on the production path: LangChain's real ``MotorheadMemory``
(langchain-community), which sends no credentials to a self-hosted URL, serves two tenants
with only a URL each — straight to gunicorn and through nginx — and no key reaches
gunicorn's access or error log, nor nginx's access or error log, including when the
upstream is down and when nginx's per-address limit refuses."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import ADMIN_TOKEN
from tests.e2e.servers import Gunicorn, Nginx, call

pytestmark = [
    pytest.mark.slow,
    # langchain-community is being sunset; its classes warn on use. They are what users run.
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

motorhead_memory = pytest.importorskip(
    "langchain_community.memory.motorhead_memory",
    reason="langchain-community is a dev dependency: `make test` installs it",
)


@pytest.fixture
def app(start_gunicorn: Callable[..., Gunicorn]) -> Gunicorn:
    # INFO: the app's request lines and gunicorn's access lines are all written.
    return start_gunicorn(RECOLLECT_PROXY_COUNT="1", RECOLLECT_LOG_LEVEL="INFO")


def create_tenant(base: str, tenant_id: str) -> str:
    reply = call(base, "POST", "/admin/tenants", ADMIN_TOKEN, {"id": tenant_id})
    assert reply.status == 201, reply
    return reply.json["api_key"]


def converse(url: str, session_id: str, turns: list[tuple[str, str]]) -> list[str]:
    """What a LangChain app does: load the session, save each turn, load it again."""
    memory = motorhead_memory.MotorheadMemory(session_id=session_id, url=url, memory_key="history")
    asyncio.run(memory.init())
    for human, ai in turns:
        memory.save_context({"input": human}, {"output": ai})
    reloaded = motorhead_memory.MotorheadMemory(session_id=session_id, url=url, memory_key="history")
    asyncio.run(reloaded.init())
    return [message.content for message in reloaded.chat_memory.messages]


def every_log_line(*paths: Path) -> str:
    return "\n".join(path.read_text(errors="replace") for path in paths if path.exists())


def assert_keys_absent(text: str, *keys: str) -> None:
    for key in keys:
        assert key not in text
        assert key.rsplit("_", 1)[-1] not in text  # not even the secret alone


def run_two_tenants(base: str) -> tuple[str, str]:
    key_a, key_b = create_tenant(base, "tenant-a"), create_tenant(base, "tenant-b")
    assert converse(f"{base}/k/{key_a}", "shared-id", [("I am Ada", "Hello Ada")]) == [
        "I am Ada",
        "Hello Ada",
    ]
    assert converse(f"{base}/k/{key_b}", "shared-id", [("I am Bob", "Hi Bob")]) == ["I am Bob", "Hi Bob"]
    # The n8n prefix too, and each tenant still sees only its own conversation.
    assert converse(f"{base}/k/{key_a}/motorhead", "shared-id", []) == ["I am Ada", "Hello Ada"]
    listed = call(base, "GET", "/sessions", key_b).json
    assert listed == ["shared-id"]
    return key_a, key_b


def test_langchain_motorhead_memory_is_multi_tenant_with_a_key_in_the_url(app):
    key_a, key_b = run_two_tenants(app.base)
    wrong = key_a[:-4] + "zzzz"
    assert call(app.base, "GET", f"/k/{wrong}/sessions/shared-id/memory").status == 401
    # gunicorn's access line shows the path the app routed, without the key.
    app.wait_for_access_line('"GET /sessions/shared-id/memory" 401')
    assert_keys_absent(every_log_line(app.access_log, app.error_log), key_a, key_b, wrong)


def test_through_nginx_no_log_holds_a_path_key(app, start_nginx: Callable[..., Nginx]):
    nginx = start_nginx(app, PER_IP_RATE="1r/s", PER_IP_BURST="40")
    key_a, key_b = run_two_tenants(nginx.base)
    nginx.wait_for_access_line("/k/<redacted>/sessions/shared-id/memory")
    # nginx's per-address limit refuses a burst (a warn line, with the request line, at
    # the server's level): the /k/ location writes none.
    statuses = [call(nginx.base, "GET", f"/k/{key_a}/sessions").status for _ in range(60)]
    assert 429 in statuses
    # Gunicorn down: nginx answers 502 and would log the upstream error with the request.
    app.stop()
    down = call(nginx.base, "GET", f"/k/{key_b}/sessions/shared-id/memory")
    assert down.status == 502
    nginx.wait_for_access_line('"GET /k/<redacted>/sessions/shared-id/memory HTTP/1.1" 502')
    logs = every_log_line(
        nginx.access_log, nginx.error_log, nginx.workdir / "stderr.log", app.access_log, app.error_log
    )
    assert_keys_absent(logs, key_a, key_b)
