"""Export and import (api.md §10) through nginx and gunicorn: a session larger than the
1 MiB request limit goes out and comes back through its own location (with a path-scoped
key, as a keyless client would), line for line."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable

import pytest

from tests.conftest import ADMIN_TOKEN
from tests.e2e.servers import Gunicorn, Nginx, call

pytestmark = pytest.mark.slow


def fetch(base: str, method: str, path: str, data: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/x-ndjson")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - loopback
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_a_session_over_the_body_limit_exports_and_imports_through_nginx(
    start_gunicorn: Callable[..., Gunicorn], start_nginx: Callable[..., Nginx]
):
    app = start_gunicorn(RECOLLECT_PROXY_COUNT="1", RECOLLECT_WINDOW_SIZE="1000")
    nginx = start_nginx(app)
    key = call(nginx.base, "POST", "/admin/tenants", ADMIN_TOKEN, {"id": "mover"}).json["api_key"]
    for batch in range(3):
        messages = [{"role": "Human", "content": chr(97 + batch) * 60_000 + str(i)} for i in range(14)]
        assert call(nginx.base, "POST", "/sessions/big/memory", key, {"messages": messages}).status == 200
    base = f"{nginx.base}/k/{key}"
    status, exported = fetch(base, "GET", "/sessions/big/export")
    assert status == 200 and len(exported) > 2 * 1024 * 1024
    assert call(nginx.base, "DELETE", "/sessions/big/memory", key).status == 200
    status, body = fetch(base, "POST", "/sessions/big/import", exported)
    assert status == 201, body
    assert fetch(base, "GET", "/sessions/big/export") == (200, exported)
    # The ordinary routes keep the 1 MiB limit.
    status, _ = fetch(base, "POST", "/sessions/other/memory", b"x" * (2 * 1024 * 1024))
    assert status == 413
