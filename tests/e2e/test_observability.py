"""Metrics and logs under real gunicorn: /metrics sums every worker's values (prometheus
multiprocess mode), and gunicorn's and the app's lines are JSON carrying the request's
context, with no secret in them."""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.conftest import ADMIN_TOKEN
from tests.e2e.servers import call

pytestmark = pytest.mark.slow


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_are_summed_across_workers(start_gunicorn, tmp_path):
    server = start_gunicorn(RECOLLECT_METRICS="1", PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prom"))
    server.wait_for_workers(2)
    key = call(
        server.base, "POST", "/admin/tenants", ADMIN_TOKEN, {"id": "acme", "rate_limit": "30/minute"}
    ).json["api_key"]
    before = call(server.base, "GET", "/metrics")
    assert before.status == 200 and before.headers["Content-Type"].startswith("text/plain")
    for i in range(40):  # new connections: both workers serve some
        call(
            server.base,
            "POST",
            f"/sessions/s{i % 3}/memory",
            key,
            {"messages": [{"role": "Human", "content": "x"}]},
        )
    assert len(server.worker_pids()) == 2
    text = _text(server.base)
    route = "/sessions/<sid:session_id>/memory"
    ok = metric(text, "recollect_http_requests_total", route=route, method="POST", status="200")
    limited = metric(text, "recollect_http_requests_total", route=route, method="POST", status="429")
    assert (ok, limited) == (30, 10), "every worker's requests are counted exactly once"
    assert metric(text, "recollect_rate_limited_total", tenant="acme") == 10
    assert metric(text, "recollect_http_request_duration_seconds_count", route=route, method="POST") == 40
    assert metric(text, "recollect_summarization_jobs_total", outcome="queued") >= 1
    assert "recollect_summarization_sessions_due" in text and "recollect_summarization_lag_seconds" in text


def _text(base: str) -> str:
    import urllib.request

    with urllib.request.urlopen(base + "/metrics", timeout=10) as response:
        return response.read().decode()


def test_metrics_are_not_served_unless_enabled(gunicorn):
    assert call(gunicorn.base, "GET", "/metrics").status == 404


def test_logs_are_json_lines_with_request_context_and_no_secrets(start_gunicorn):
    server = start_gunicorn(RECOLLECT_LOG_FORMAT="json", RECOLLECT_LOG_LEVEL="INFO")
    key = call(server.base, "POST", "/admin/tenants", ADMIN_TOKEN, {"id": "acme"}).json["api_key"]
    secret = "the launch code is 0000"
    for i in range(6):
        reply = call(
            server.base,
            "POST",
            "/sessions/private-chat/memory",
            key,
            {"messages": [{"role": "Human", "content": f"{secret} #{i}. More."}]},
            headers={"X-Request-ID": f"trace-{i}"},
        )
        assert reply.status == 200
    call(server.base, "GET", "/sessions/private-chat/memory", key)
    call(server.base, "GET", "/sessions", "rk_wrong")
    server.wait_for_access_line("trace-5")
    server.stop()
    lines = [line for path in (server.access_log, server.error_log) for line in path.read_text().splitlines()]
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert records and len(records) == len([line for line in lines if line.strip()]), "every line is JSON"
    access = [r for r in records if r["logger"] == "gunicorn.access" and "trace-3" in r["message"]]
    assert access and access[0]["tenant_id"] == "acme" and access[0]["request_id"] == "trace-3"
    app_lines = [r for r in records if r["logger"] == "recollect" and r.get("route")]
    assert any(r["route"] == "/sessions/<sid:session_id>/memory" and r["status"] == 200 for r in app_lines)
    folds = [r for r in records if r["logger"] == "recollect.jobs"]
    assert folds and all(r.get("tenant_id") == "acme" for r in folds), (
        "fold threads carry the request context"
    )
    everything = "\n".join(lines)
    for leaked in (key, key.split("_", 2)[2], ADMIN_TOKEN, secret, "rk_wrong"):
        assert leaked not in everything, leaked
    # The app's own lines name the route template, never the session id (gunicorn's access
    # lines keep the path, as operators expect of an access log).
    assert not [r for r in records if r["logger"].startswith("recollect") and "private-chat" in json.dumps(r)]
    assert re.search(r'"level": ?"(INFO|WARNING)"', everything)


def test_one_request_writes_exactly_one_log_line_under_gunicorn_as_shipped(start_gunicorn):
    """Shipped defaults: INFO, JSON, gunicorn's access log off — the app's request line is
    the only line a request writes (it used to be three: the app's twice, gunicorn's once)."""
    server = start_gunicorn(RECOLLECT_LOG_FORMAT="json", RECOLLECT_LOG_LEVEL="INFO", GUNICORN_ACCESSLOG="off")
    key = call(server.base, "POST", "/admin/tenants", ADMIN_TOKEN, {"id": "acme"}).json["api_key"]
    for i, (method, body) in enumerate(
        [("GET", None), ("POST", {"messages": [{"role": "Human", "content": "x"}]})]
    ):
        call(
            server.base, method, "/sessions/one/memory", key, body, headers={"X-Request-ID": f"one-line-{i}"}
        )
    deadline = time.monotonic() + 5
    while server.error_log.read_text().count("one-line-1") < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    text = server.error_log.read_text()
    for i in range(2):
        lines = [line for line in text.splitlines() if f"one-line-{i}" in line]
        assert len(lines) == 1, lines
        assert json.loads(lines[0])["route"] == "/sessions/<sid:session_id>/memory"
