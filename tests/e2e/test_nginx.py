"""The production path, end to end: a client → nginx (nginx/recollect.conf.template, rendered
by nginx/render.py) → gunicorn (config/gunicorn.conf.py, 2 workers, RECOLLECT_PROXY_COUNT=1)
→ a real redis-server. Every process is real and on its own loopback port.

Clients at 127.0.0.2 and 127.0.0.3 are other machines as far as nginx and the app can tell:
that is how the per-address rules (allow lists, limits) are exercised from one host.
"""

from __future__ import annotations

import http.client
import json
import re
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import ADMIN_TOKEN
from tests.e2e.servers import Gunicorn, Nginx, Reply, call, pause_redis

pytestmark = pytest.mark.slow

MiB = 1024 * 1024
GENERATED_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def app(start_gunicorn: Callable[..., Gunicorn]) -> Gunicorn:
    # The Redis timeout leaves room for tests that hold Redis for 2-3 s on purpose.
    return start_gunicorn(RECOLLECT_PROXY_COUNT="1", RECOLLECT_REDIS_SOCKET_TIMEOUT="10")


@pytest.fixture
def nginx(app: Gunicorn, start_nginx: Callable[..., Nginx]) -> Nginx:
    return start_nginx(app)


def create_tenant(base: str, tenant_id: str = "acme") -> str:
    reply = call(base, "POST", "/admin/tenants", ADMIN_TOKEN, {"id": tenant_id})
    assert reply.status == 201, reply
    return reply.json["api_key"]


def assert_nginx_error(reply: Reply, status: int, code: str) -> None:
    """nginx's own refusals look exactly like the app's errors."""
    assert reply.status == status, reply
    assert reply.headers["Content-Type"] == "application/json"
    assert set(reply.json) == {"error"}
    assert reply.json["error"]["code"] == code
    assert reply.json["error"]["message"]
    assert len(reply.headers.get_all("X-Request-ID")) == 1


def test_the_memory_api_works_through_nginx(app, nginx):
    key = create_tenant(nginx.base)  # the admin API, from an internal address
    messages = [{"role": "Human", "content": "Ship on the 14th?"}, {"role": "AI", "content": "Yes."}]
    posted = call(nginx.base, "POST", "/sessions/chat-42/memory", key, {"messages": messages})
    assert posted.status == 200
    assert posted.json == {"status": "Ok", "message_ids": [1, 2]}

    memory = call(nginx.base, "GET", "/sessions/chat-42/memory", key)
    assert memory.status == 200
    assert [m["content"] for m in memory.json["messages"]] == ["Yes.", "Ship on the 14th?"]
    n8n = call(nginx.base, "GET", "/motorhead/sessions/chat-42/memory", key)
    assert n8n.json["messages"] == memory.json["messages"]
    # No version in the Server header (server_tokens off), and not gunicorn's.
    assert memory.headers["Server"] == "nginx"

    # The app's own errors pass through untouched: same status, body and headers.
    through_nginx = call(nginx.base, "GET", "/sessions", "rk_not_a_key")
    direct = call(app.base, "GET", "/sessions", "rk_not_a_key")
    assert through_nginx.status == direct.status == 401
    assert through_nginx.json == direct.json
    assert through_nginx.headers["WWW-Authenticate"] == direct.headers["WWW-Authenticate"]


def test_request_ids_are_generated_or_kept_and_logged_by_nginx_and_gunicorn(app, nginx):
    key = create_tenant(nginx.base)

    generated = call(nginx.base, "GET", "/sessions", key)
    request_id = generated.headers["X-Request-ID"]
    assert GENERATED_ID.fullmatch(request_id)
    assert generated.headers.get_all("X-Request-ID") == [request_id]
    # gunicorn logs the id the app answered with: the app received nginx's id and kept it.
    assert '"GET /sessions" 200' in app.wait_for_access_line(f"rid={request_id}")
    assert '"GET /sessions HTTP/1.1" 200' in nginx.wait_for_access_line(f"rid={request_id}")

    kept = call(nginx.base, "GET", "/sessions", key, headers={"X-Request-ID": "client-7.trace:42"})
    assert kept.headers.get_all("X-Request-ID") == ["client-7.trace:42"]
    app.wait_for_access_line("rid=client-7.trace:42")
    nginx.wait_for_access_line("rid=client-7.trace:42")

    # One the app would refuse (spaces; a log-injection attempt) is replaced, consistently.
    replaced = call(nginx.base, "GET", "/sessions", key, headers={"X-Request-ID": "x y rid=forged"})
    new_id = replaced.headers["X-Request-ID"]
    assert GENERATED_ID.fullmatch(new_id)
    app.wait_for_access_line(f"rid={new_id}")
    nginx.wait_for_access_line(f"rid={new_id}")
    assert not any("forged" in line for line in app.access_lines() + nginx.access_lines())


def test_access_logs_hold_no_query_string_and_no_credentials(app, nginx):
    key = create_tenant(nginx.base)
    call(nginx.base, "GET", "/sessions?api_key=secret-in-query", key)
    call(nginx.base, "GET", "/keys/current", headers={"x-metal-api-key": key})
    assert call(nginx.base, "GET", "/healthz").status == 200
    last = call(nginx.base, "GET", "/sessions", key).headers["X-Request-ID"]

    assert '"GET /sessions HTTP/1.1"' in nginx.wait_for_access_line(f"rid={last}")
    app.wait_for_access_line(f"rid={last}")
    secret = key.rsplit("_", 1)[1]  # rk_<key id>_<secret>: the key id may be logged, never this
    for log in (nginx.access_log, app.access_log):
        text = log.read_text()
        assert "secret-in-query" not in text and secret not in text, log
    # Probes are not worth a line at nginx.
    assert not any("/healthz" in line for line in nginx.access_lines())


def test_a_body_over_the_apps_limit_is_refused_by_nginx_before_gunicorn(app, nginx):
    key = create_tenant(nginx.base)
    message = json.dumps({"messages": [{"role": "Human", "content": "hi"}]}).encode()

    # Exactly RECOLLECT_MAX_BODY_BYTES (JSON padded with whitespace) passes nginx and the app.
    exact = call(nginx.base, "POST", "/sessions/fits/memory", key, data=message.ljust(MiB))
    assert exact.status == 200, exact

    # One byte more is refused by nginx, in the API's error shape.
    over = call(nginx.base, "POST", "/sessions/too-big/memory", key, data=message.ljust(MiB + 1))
    assert_nginx_error(over, 413, "payload_too_large")
    assert '"POST /sessions/too-big/memory HTTP/1.1" 413' in nginx.wait_for_access_line(
        f"rid={over.headers['X-Request-ID']}"
    )

    # A chunked body announces no length: nginx counts while buffering, still before gunicorn.
    connection = http.client.HTTPConnection("127.0.0.1", nginx.port, timeout=10)
    chunks = (b" " * 65536 for _ in range(32))  # 2 MiB
    connection.request(
        "POST",
        "/sessions/too-big-chunked/memory",
        body=chunks,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        encode_chunked=True,
    )
    response = connection.getresponse()
    assert response.status == 413
    assert json.loads(response.read())["error"]["code"] == "payload_too_large"
    connection.close()

    # gunicorn saw the request that fitted and a later one, never the refused ones.
    last = call(nginx.base, "GET", "/sessions", key).headers["X-Request-ID"]
    app.wait_for_access_line(f"rid={last}")
    seen = "\n".join(app.access_lines())
    assert '"POST /sessions/fits/memory" 200' in seen
    assert "too-big" not in seen


def test_nginx_limits_each_client_address_and_answers_429_in_json(app, start_nginx):
    # One request, then a burst of 3, per address; refill far slower than the test runs.
    nginx = start_nginx(app, PER_IP_RATE="1r/m", PER_IP_BURST="3")
    key = create_tenant(app.base)  # straight to gunicorn: nginx's budget stays whole

    replies = [call(nginx.base, "GET", "/sessions", key) for _ in range(6)]
    assert [r.status for r in replies] == [200, 200, 200, 200, 429, 429]
    assert_nginx_error(replies[-1], 429, "rate_limited")
    assert replies[-1].headers["Retry-After"] == "1"
    assert replies[-1].json["error"]["message"] == "too many requests from this address"

    # Another address has its own budget; probes are never limited.
    other = call(nginx.base, "GET", "/sessions", key, source="127.0.0.3")
    assert other.status == 200
    assert call(nginx.base, "GET", "/healthz").status == 200
    # The refused requests cost the app nothing: gunicorn saw 4 + 1 of the 7 GET /sessions.
    for reply in [*replies[:4], other]:
        app.wait_for_access_line(f"rid={reply.headers['X-Request-ID']}")
    assert sum('"GET /sessions"' in line for line in app.access_lines()) == 5


def test_admin_and_metrics_answer_only_internal_addresses(app, nginx):
    key = create_tenant(nginx.base)  # 127.0.0.1 is internal
    outsider = "127.0.0.2"  # not in the allow lists (they name 127.0.0.1 only)

    admin = call(nginx.base, "GET", "/admin/tenants", ADMIN_TOKEN, source=outsider)
    assert_nginx_error(admin, 403, "forbidden")  # even with the right token
    assert_nginx_error(call(nginx.base, "GET", "/metrics", source=outsider), 403, "forbidden")
    # The tenant API itself is public.
    assert call(nginx.base, "GET", "/sessions", key, source=outsider).status == 200

    # From inside, both reach the app and get its own answers.
    assert call(nginx.base, "GET", "/admin/tenants", ADMIN_TOKEN).status == 200
    inside = call(nginx.base, "GET", "/metrics")
    direct = call(app.base, "GET", "/metrics")
    assert inside.status == direct.status != 403
    assert inside.headers["Content-Type"] == direct.headers["Content-Type"]


def test_the_app_sees_the_real_client_address_and_ignores_a_forged_one(app, nginx):
    """RECOLLECT_PROXY_COUNT=1: the address nginx appends to X-Forwarded-For, no other.

    Failed authentications are limited per client address (20 a minute). With no proxy
    trusted, every client would be nginx's 127.0.0.1 and block the others; trusting the
    client's own X-Forwarded-For would let it dodge the limit with a new address each time.
    """
    key = create_tenant(nginx.base)
    attacker = "127.0.0.2"
    statuses = [
        call(
            nginx.base,
            "GET",
            "/sessions",
            f"rk_guess{i}",
            source=attacker,
            headers={"X-Forwarded-For": f"203.0.113.{i}"},
        ).status
        for i in range(21)
    ]
    assert statuses == [401] * 20 + [429]
    # The app logged the attacker's real address, never a forged one.
    assert any(f'{attacker} "GET /sessions" 401' in line for line in app.access_lines())
    assert not any("203.0.113." in line for line in app.access_lines())

    # Other clients are unaffected: a mistyped key is still a plain 401, a good one works.
    assert call(nginx.base, "GET", "/sessions", "rk_typo").status == 401
    assert call(nginx.base, "GET", "/sessions", key).status == 200


def test_a_host_that_is_not_ours_gets_no_answer(nginx):
    connection = http.client.HTTPConnection("127.0.0.1", nginx.port, timeout=5)
    connection.request("GET", "/healthz", headers={"Host": "attacker.example"})
    with pytest.raises(http.client.RemoteDisconnected):  # nginx's 444: close, say nothing
        connection.getresponse()
    connection.close()
    assert call(nginx.base, "GET", "/healthz").status == 200  # Host: 127.0.0.1 is ours


def test_gunicorn_down_is_a_json_502(app, nginx):
    assert app.stop() == 0
    reply = call(nginx.base, "GET", "/sessions", "rk_any")
    assert_nginx_error(reply, 502, "bad_gateway")
    assert reply.headers["Retry-After"] == "1"
    # Logged like any other request, under the id the client got.
    logged = nginx.wait_for_access_line(f"rid={reply.headers['X-Request-ID']}")
    assert '"GET /sessions HTTP/1.1" 502' in logged


def test_an_app_slower_than_proxy_read_timeout_is_a_json_504(app, start_nginx, redis_server):
    nginx = start_nginx(app, PROXY_READ_TIMEOUT="1s")
    app.wait_for_workers(2)  # a worker still booting could itself exceed 1 s
    key = create_tenant(app.base)
    pause_redis(redis_server, 2500)  # the request waits on Redis inside the app
    started = time.monotonic()
    reply = call(nginx.base, "GET", "/sessions/s/memory", key)
    elapsed = time.monotonic() - started
    assert_nginx_error(reply, 504, "gateway_timeout")
    assert "Retry-After" not in reply.headers  # it may have taken effect: no blind retry
    assert 0.9 < elapsed < 2.4


def test_sigterm_lets_in_flight_requests_finish(app, nginx, redis_server):
    key = create_tenant(nginx.base)
    app.wait_for_workers(2)
    message = {"messages": [{"role": "Human", "content": "written during the shutdown"}]}

    # Hold Redis for 2 s: the requests below reach the workers and wait there, mid-request.
    pause_redis(redis_server, 2000)
    with ThreadPoolExecutor(max_workers=6) as pool:
        posts = [
            pool.submit(call, nginx.base, "POST", f"/sessions/s{i}/memory", key, message) for i in range(3)
        ]
        gets = [pool.submit(call, nginx.base, "GET", "/sessions/s0/memory", key) for _ in range(3)]
        time.sleep(0.8)  # loopback: they reach the workers within milliseconds
        assert not any(f.done() for f in posts + gets), "the requests must still be in flight"
        app.signal(signal.SIGTERM)
        post_replies = [f.result(timeout=30) for f in posts]
        get_replies = [f.result(timeout=30) for f in gets]

    # Every request that gunicorn had accepted is answered in full, after the SIGTERM.
    assert [(r.status, r.json) for r in post_replies] == [(200, {"status": "Ok", "message_ids": [1]})] * 3
    assert [r.status for r in get_replies] == [200] * 3
    assert app.wait() == 0  # a clean exit, well within graceful_timeout
    # Once gunicorn is gone, new requests get nginx's JSON 502, not a hang.
    assert_nginx_error(call(nginx.base, "GET", "/sessions", key), 502, "bad_gateway")
