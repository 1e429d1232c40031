"""Body limits at the edges (issue 15 §3), straight to gunicorn and through nginx: a body over
RECOLLECT_MAX_BODY_BYTES (1 MiB) is a JSON 413 that an ordinary client actually receives —
announced with Content-Length or sent chunked — and a chunked body is never cut short."""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest
import requests

from tests.conftest import ADMIN_TOKEN
from tests.e2e.servers import Gunicorn, Nginx, call

pytestmark = pytest.mark.slow

MiB = 1024 * 1024


@pytest.fixture
def app(start_gunicorn: Callable[..., Gunicorn]) -> Gunicorn:
    return start_gunicorn(RECOLLECT_PROXY_COUNT="1")


def new_key(base: str) -> str:
    reply = call(base, "POST", "/admin/tenants", ADMIN_TOKEN, {"id": "bodies"})
    assert reply.status == 201, reply
    return reply.json["api_key"]


def chunked_post(base: str, path: str, key: str, body: bytes) -> tuple[int, dict]:
    def pieces() -> Iterator[bytes]:
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    url = urlsplit(base)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        connection.request(
            "POST",
            path,
            body=pieces(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            encode_chunked=True,
        )
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()


def message(content: str) -> bytes:
    return json.dumps({"messages": [{"role": "Human", "content": content}]}).encode()


def assert_payload_too_large(status: int, body: dict) -> None:
    assert status == 413, body
    assert body["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize("edge", ["gunicorn", "nginx"])
def test_over_the_limit_is_a_413_the_client_receives_and_nothing_is_cut(
    app: Gunicorn, start_nginx: Callable[..., Nginx], edge: str
):
    base = app.base if edge == "gunicorn" else start_nginx(app).base
    key = new_key(base)
    path = "/sessions/bodies/memory"
    # Announced length, sent by requests (which writes the whole body before reading).
    announced = requests.post(
        base + path,
        data=message("x" * (2 * MiB)),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert_payload_too_large(announced.status_code, announced.json())
    # Chunked: valid JSON followed by 1.5 MiB of spaces is not accepted cut at 1 MiB...
    assert_payload_too_large(*chunked_post(base, path, key, message("padded") + b" " * (3 * MiB // 2)))
    # ... and a 2 MiB chunked message is a 413, not a 400 for JSON cut in the middle.
    assert_payload_too_large(*chunked_post(base, path, key, message("y" * (2 * MiB))))
    # Under the limit, chunked, a body of 15 messages of 60 KiB (0.9 MiB) is taken whole.
    whole = json.dumps(
        {"messages": [{"role": "Human", "content": chr(97 + i) * 60 * 1024} for i in range(15)]}
    )
    status, body = chunked_post(base, path, key, whole.encode())
    assert status == 200, body
    stored = call(base, "GET", "/sessions/bodies/messages?limit=100", key).json["messages"]
    assert sorted(m["content"] for m in stored) == sorted(chr(97 + i) * 60 * 1024 for i in range(15))
