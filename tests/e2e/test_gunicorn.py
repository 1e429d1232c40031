"""The app under real gunicorn (config/gunicorn.conf.py), 2 worker processes, real Redis."""

from __future__ import annotations

import http.client
import re
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import ADMIN_TOKEN
from tests.e2e.servers import ROOT, call, listening_sockets

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


def test_a_new_worker_serves_its_first_requests_about_as_fast_as_later_ones(start_gunicorn):
    """Warm start: the tokenizer's encodings (a second of CPU each) are loaded before a
    worker accepts, so the first append on each worker no longer waits ~0.8 s. Allowed:
    2× the steady 90th percentile, plus 20 ms for the Lua scripts each process loads once."""
    server = start_gunicorn(GUNICORN_WORKERS="2", GUNICORN_THREADS="4", RECOLLECT_WINDOW_SIZE="1000")
    key = call(
        server.base, "POST", "/admin/tenants", ADMIN_TOKEN, {"id": "warm", "rate_limit": "100000/minute"}
    ).json["api_key"]
    body = {"messages": [{"role": "Human", "content": "hello there"}, {"role": "AI", "content": "hi"}]}

    def timed(method: str, path: str, payload: dict | None = None) -> float:
        started = time.perf_counter()
        assert call(server.base, method, path, key, payload).status == 200
        return time.perf_counter() - started

    first = [timed("POST", f"/sessions/s{i}/memory", body) for i in range(6)]
    first += [timed("GET", f"/sessions/s{i}/memory") for i in range(6)]
    for i in range(100):
        timed("POST", f"/sessions/s{i % 10}/memory", body)
    steady = sorted(timed("POST", f"/sessions/s{i % 10}/memory", body) for i in range(60))
    p90 = steady[int(len(steady) * 0.9)]
    assert max(first) <= 2 * p90 + 0.020, (first, p90)


def test_each_worker_also_listens_on_a_socket_of_its_own_and_new_connections_reach_both(gunicorn):
    # One shared socket let whichever worker woke first take a whole burst of connections
    # (wrk's 32, nginx's keep-alive pool); with a socket per worker the kernel spreads them.
    gunicorn.wait_for_workers(2)
    sockets = listening_sockets(gunicorn.process.pid)
    assert len(sockets) == 3 and set(sockets.values()) == {gunicorn.port}, "the master's and one per worker"

    def one_connection(_: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", gunicorn.port, timeout=10)
        connection.request("GET", "/healthz")
        assert connection.getresponse().status == 200
        connection.close()

    with ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(one_connection, range(32)))
    time.sleep(0.3)  # gunicorn writes its access line after each response
    served = Counter(re.findall(r"/healthz\" 200 .* pid=<?(\d+)", gunicorn.access_log.read_text()))
    assert len(served) == 2 and min(served.values()) >= 4, served


def test_a_port_another_server_listens_on_is_refused_not_shared(gunicorn, tmp_path):
    # SO_REUSEPORT would let a second server of the same user join the port and take part
    # of its traffic; the first server here stands for any such process.
    with (tmp_path / "second.log").open("wb") as errors:
        second = subprocess.run(
            [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "wsgi:app"],
            cwd=ROOT,
            env={**gunicorn.env, "GUNICORN_BIND": gunicorn.upstream},
            stdout=subprocess.DEVNULL,
            stderr=errors,
            timeout=60,
        )
    assert second.returncode != 0
    assert f"Address already in use: {gunicorn.upstream}" in (tmp_path / "second.log").read_text()


def test_connections_keep_being_served_while_workers_recycle_and_boot(start_gunicorn):
    # A worker's own socket exists only while it accepts: connections hashed to a worker
    # still importing the app, or to one finishing its last requests, would wait there and
    # then be reset. Workers recycle every 30 requests here.
    server = start_gunicorn(GUNICORN_MAX_REQUESTS="30", GUNICORN_MAX_REQUESTS_JITTER="0")
    server.wait_for_workers(2)

    def client(_: int) -> list[int | str]:
        answers: list[int | str] = []
        for _ in range(40):
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
            try:
                connection.request("GET", "/healthz")
                answers.append(connection.getresponse().status)
            except OSError as exc:  # a reset, a timeout
                answers.append(type(exc).__name__)
            finally:
                connection.close()
        return answers

    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = [answer for one in pool.map(client, range(4)) for answer in one]
    seen = Counter(answers)
    time.sleep(0.3)  # gunicorn writes its access line after each response
    workers = set(re.findall(r"pid=<?(\d+)", server.access_log.read_text()))
    recycles = len(workers) - 2
    assert recycles >= 2, "the workers were recycled and new ones served"
    # None refused, none left waiting at a booting worker. A reset only in the instant
    # between a stopping worker's last accept and its close, so one per recycle at most;
    # about one recycle in twenty has one here on a busy machine (net.ipv4.tcp_migrate_req=1
    # hands that connection to another socket of the group instead, docs/deploy.md).
    assert set(seen) <= {200, "ConnectionResetError"}, seen
    assert seen["ConnectionResetError"] <= recycles, (seen, recycles)
