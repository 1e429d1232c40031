"""The app under real gunicorn (config/gunicorn.conf.py), 2 worker processes, real Redis."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import ADMIN_TOKEN
from tests.e2e.servers import call

pytestmark = pytest.mark.slow


def test_a_tenant_limit_holds_across_worker_processes(gunicorn):
    base, access_log = gunicorn.base, gunicorn.access_log
    status, body, _ = call(
        base, "POST", "/admin/tenants", ADMIN_TOKEN, {"id": "acme", "rate_limit": "10/minute"}
    )
    assert status == 201
    key = body["api_key"]
    statuses: list[int] = []
    pids: set[str] = set()
    with ThreadPoolExecutor(max_workers=8) as pool:
        # Concurrent connections until both workers have answered (the kernel decides
        # which process accepts; bounded at 400 requests).
        while len(pids) < 2 and len(statuses) < 400:
            statuses += pool.map(lambda _: call(base, "GET", "/sessions", key)[0], range(40))
            time.sleep(0.3)  # gunicorn writes its access log line after each response
            pids = set(re.findall(r"pid=<?(\d+)", access_log.read_text()))
    assert len(pids) == 2, "both workers must have served requests"
    assert statuses.count(200) == 10, "the limit is shared by the workers, not per process"
    assert statuses.count(429) == len(statuses) - 10


def test_summaries_run_in_the_workers(gunicorn):
    base = gunicorn.base
    key = call(base, "POST", "/admin/tenants", ADMIN_TOKEN, {"id": "acme"})[1]["api_key"]
    for i in range(5):
        body = {"messages": [{"role": "Human", "content": f"Point {i} matters. Detail."}]}
        assert call(base, "POST", "/sessions/s1/memory", key, body)[0] == 200
    deadline = time.monotonic() + 10
    while True:
        memory = call(base, "GET", "/sessions/s1/memory", key)[1]
        if memory["context"]:
            break
        assert time.monotonic() < deadline, "no worker summarized"
        time.sleep(0.1)
    assert memory["context"].startswith("Human: Point 0 matters.")
    assert memory["pending_summary"] == 0
