"""nginx's own edges (issue 15 §4-5): its parser's refusals answer in the API's JSON shape,
a client that never finishes its headers is dropped after CLIENT_HEADER_TIMEOUT, and even
at `error_log ... info` (as the test harness runs it) no credential reaches a log."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable

import pytest

from tests.conftest import ADMIN_TOKEN
from tests.e2e.servers import Gunicorn, Nginx, call

pytestmark = pytest.mark.slow


@pytest.fixture
def app(start_gunicorn: Callable[..., Gunicorn]) -> Gunicorn:
    return start_gunicorn(RECOLLECT_PROXY_COUNT="1")


@pytest.fixture
def nginx(app: Gunicorn, start_nginx: Callable[..., Nginx]) -> Nginx:
    return start_nginx(app, CLIENT_HEADER_TIMEOUT="2s")


def raw_exchange(nginx: Nginx, request: bytes, timeout: float = 10) -> bytes:
    with socket.create_connection(("127.0.0.1", nginx.port), timeout=timeout) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def status_and_json(reply: bytes) -> tuple[int, dict]:
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert headers["Content-Type"] == "application/json", head
    return int(lines[0].split()[1]), json.loads(body)


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [
        (b"GARBAGE\r\n\r\n", 400, "bad_request"),
        (
            b"GET /sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-" + b"a" * 9000 + b": 1\r\n\r\n",
            431,
            "request_header_too_large",
        ),
        (
            b"POST /sessions/s/memory HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            501,
            "not_implemented",
        ),
        (b"GET /sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header\r\n\r\n", 400, "bad_request"),
    ],
)
def test_nginx_parser_refusals_answer_in_the_api_error_shape(nginx, request_bytes, status, code):
    got_status, body = status_and_json(raw_exchange(nginx, request_bytes))
    assert got_status == status
    assert body["error"]["code"] == code and body["error"]["message"]


def test_a_client_that_never_finishes_its_headers_is_dropped_after_the_header_timeout(nginx):
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", nginx.port), timeout=30) as sock:
        sock.sendall(b"GET /sessions HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        while sock.recv(65536):
            pass
    assert 1.5 <= time.monotonic() - started < 8


def test_duplicate_credentials_never_reach_nginx_error_log_even_at_info(app, nginx):
    key = call(nginx.base, "POST", "/admin/tenants", ADMIN_TOKEN, {"id": "dup"}).json["api_key"]
    other = key[:-6] + "ZZZZZZ"
    reply = raw_exchange(
        nginx,
        (
            f"GET /sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
            f"Authorization: Bearer {other}\r\nConnection: close\r\n\r\n"
        ).encode(),
    )
    assert reply.startswith(b"HTTP/1.1 400")
    time.sleep(0.3)
    logs = "\n".join(
        path.read_text(errors="replace")
        for path in (nginx.error_log, nginx.workdir / "stderr.log", nginx.access_log)
        if path.exists()
    )
    for secret in (key, other, key.rsplit("_", 1)[-1]):
        assert secret not in logs


def test_a_neighbours_failed_authentications_do_not_lock_out_a_valid_key_through_nginx(app, nginx):
    """Two clients behind one address (127.0.0.2 here, as behind a NAT): one fails over and
    over, the other's valid key keeps working. (The operator's token, which nginx admits
    from internal addresses only, is covered in tests/security/test_auth_security.py.)"""
    key = call(nginx.base, "POST", "/admin/tenants", ADMIN_TOKEN, {"id": "victim"}).json["api_key"]
    wrong = "rk_" + "N" * 12 + "_" + "x" * 43
    statuses = [call(nginx.base, "GET", "/sessions", wrong, source="127.0.0.2").status for _ in range(25)]
    assert statuses[:20] == [401] * 20 and set(statuses[20:]) == {429}
    for _ in range(5):
        assert call(nginx.base, "GET", "/sessions", key, source="127.0.0.2").status == 200
        assert call(nginx.base, "GET", "/sessions", wrong, source="127.0.0.2").status == 429
