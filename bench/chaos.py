"""``make chaos``: prove that nothing is lost, duplicated or summarized twice under faults.

Concurrent writers post marked messages (``[[w<thread>-<n>]]``) over many sessions, each
POST with its own ``Idempotency-Key`` and retried until acknowledged — the client contract
that makes "a 503 whose write did land" safe — while:

* the fake LLM (a separate process) fails 30 % of calls and is slow;
* ``redis-server`` (AOF, fsync always) hangs (SIGSTOP, ``--hang-seconds``) and is then
  restarted mid-run on the same port;
* a gunicorn worker is SIGKILLed while summarizations are in flight.

Afterwards the LLM is healed and the run waits until every session has settled, then reads
every window and summary back (the fake echoes each folded marker) and counts: lost
(acknowledged, found nowhere), duplicated (found more than once), summarized twice (twice in
a summary). It also checks that requests during the Redis outage got 503 with
``Retry-After`` within 1 s and that the service recovered without a restart. One verdict line;
any slow or bare 503 is listed with its error code and when it started.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis as redis_lib  # noqa: E402

from bench.run import ADMIN, Proc, gunicorn_project  # noqa: E402
from devtools.processes import RedisServer, wait_for_port  # noqa: E402

MARKER = re.compile(r"\[\[w\d+-\d+\]\]")


def request(
    base: str,
    method: str,
    path: str,
    key: str,
    body: dict | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10,
) -> tuple[int, dict, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        req.add_header(name, value)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:  # noqa: S310 - loopback
            return response.status, json.loads(response.read() or b"null"), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null"), dict(error.headers)


class Writers:
    def __init__(self, base: str, key: str, threads: int, sessions: int) -> None:
        self.base, self.key, self.sessions = base, key, sessions
        self.acked: dict[str, Counter] = {f"c{s}": Counter() for s in range(sessions)}
        # (seconds, Retry-After, error code, started at): the last two say which fault it met.
        self.outage: list[tuple[float, str | None, str, float]] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.errors = Counter()
        self.threads = [threading.Thread(target=self.write, args=(t,)) for t in range(threads)]

    def write(self, thread: int) -> None:
        rng = random.Random(thread)  # noqa: S311
        n = 0
        while not self.stop.is_set():
            session = f"c{rng.randrange(self.sessions)}"
            marker = f"[[w{thread}-{n}]]"
            body = {"messages": [{"role": "Human" if n % 2 == 0 else "AI", "content": f"msg {marker}"}]}
            idem = {"Idempotency-Key": f"w{thread}-{n}"}
            while True:  # retried until acknowledged: the idempotency key makes it safe
                started = time.monotonic()
                try:
                    status, answer, headers = request(
                        self.base, "POST", f"/sessions/{session}/memory", self.key, body, idem, timeout=5
                    )
                except (OSError, http.client.HTTPException) as exc:  # a worker died mid-answer
                    status, answer, headers = 0, None, {}
                    self.errors[type(exc).__name__] += 1
                elapsed = time.monotonic() - started
                if status == 200:
                    with self.lock:
                        self.acked[session][marker] += 1
                    break
                if status == 503:
                    error = answer.get("error", {}) if isinstance(answer, dict) else {}
                    code = error.get("code", "?")
                    self.outage.append((elapsed, headers.get("Retry-After"), code, started))
                elif status:
                    self.errors[f"http_{status}"] += 1
                time.sleep(0.05)
            n += 1


def worker_pids(master: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Recollect under faults")
    parser.add_argument("--seconds", type=int, default=120, help="how long the writers run")
    parser.add_argument("--threads", type=int, default=6)
    parser.add_argument("--sessions", type=int, default=30)
    parser.add_argument("--hang-seconds", type=float, default=1.5, help="Redis stalled before its restart")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="recollect-chaos-"))
    redis = RedisServer(workdir / "redis", "--appendonly", "yes", "--appendfsync", "always").start()
    llm = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devtools.fake_llm",
            "--port",
            "0",
            "--latency",
            "0.3",
            "--fail-rate",
            "0.3",
            "--seed",
            "7",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    llm_url = llm.stdout.readline().split()[-1]
    llm_control = llm_url.removesuffix("/v1")
    app: Proc | None = None
    try:
        app = gunicorn_project(
            redis.url,
            llm_url,
            RECOLLECT_WINDOW_SIZE="4",
            RECOLLECT_SWEEP_INTERVAL_SECONDS="0.2",
            RECOLLECT_SUMMARY_RETRY_BASE_SECONDS="0.2",
            RECOLLECT_SUMMARY_RETRY_MAX_SECONDS="2",
            RECOLLECT_LLM_TIMEOUT_SECONDS="1",
            RECOLLECT_LLM_MAX_RETRIES="0",
            RECOLLECT_REDIS_SOCKET_TIMEOUT="0.5",
        )
        created = request(
            app.base, "POST", "/admin/tenants", ADMIN, {"id": "chaos", "rate_limit": "1000000/minute"}
        )
        key = created[1]["api_key"]
        writers = Writers(app.base, key, args.threads, args.sessions)
        for thread in writers.threads:
            thread.start()

        time.sleep(args.seconds / 3)
        outage_at = time.monotonic()
        # First a hang (a stalled fsync or fork looks like this: connections are accepted,
        # nothing answers), then the restart.
        redis.process.send_signal(signal.SIGSTOP)
        time.sleep(args.hang_seconds)
        redis.process.send_signal(signal.SIGCONT)
        redis.process.send_signal(signal.SIGTERM)  # AOF: what was acknowledged is on disk
        redis.process.wait(timeout=30)
        time.sleep(2)  # the outage
        redis.process = None
        _restart(redis, redis.port)

        time.sleep(args.seconds / 6)
        pids = worker_pids(app.process.pid)
        victim = pids[0]
        os.kill(victim, signal.SIGKILL)  # folds are in flight at all times in this run
        killed_at = time.monotonic()

        time.sleep(max(0.0, args.seconds / 2 - (time.monotonic() - killed_at)))
        writers.stop.set()
        for thread in writers.threads:
            thread.join(timeout=30)

        # Heal the LLM and let every due session settle.
        urllib.request.urlopen(
            urllib.request.Request(  # noqa: S310
                llm_control + "/_control",
                data=json.dumps({"fail_rate": 0.0}).encode(),
                method="POST",
                headers={"Content-Type": "application/json"},
            ),
            timeout=5,
        ).read()
        deadline = time.monotonic() + 120
        pending = None
        redis_client = redis_lib.Redis.from_url(redis.url)
        while time.monotonic() < deadline:
            states = [
                request(app.base, "GET", f"/sessions/c{s}/memory", key)[1] for s in range(args.sessions)
            ]
            pending = sum(st["pending_summary"] + max(0, len(st["messages"]) - 4) for st in states)
            due = redis_client.zcard("rc:due")
            if pending == 0 and due == 0:
                break
            time.sleep(0.5)

        found: dict[str, Counter] = {}
        summarized_twice = 0
        for s in range(args.sessions):
            state = request(app.base, "GET", f"/sessions/c{s}/memory", key)[1]
            in_summary = Counter(MARKER.findall(state["context"] or ""))
            in_window = Counter(m for msg in state["messages"] for m in MARKER.findall(msg["content"]))
            summarized_twice += sum(1 for c in in_summary.values() if c > 1)
            found[f"c{s}"] = in_summary + in_window
        acked = sum(sum(c.values()) for c in writers.acked.values())
        lost = sum(1 for s, c in writers.acked.items() for m in c if found[s][m] == 0)
        duplicated = sum(1 for c in found.values() for m, n in c.items() if n > 1)
        unknown = sum(1 for s, c in found.items() for m in c if m not in writers.acked[s])
        slow_503 = [o for o in writers.outage if o[0] > 1.0 or o[1] is None]
        recovered = request(app.base, "GET", "/readyz", key)[0] == 200
        server_errors = writers.errors.get("http_500", 0)  # a fault is never the client's 500
        ok = (
            lost == duplicated == summarized_twice == unknown == server_errors == 0
            and not slow_503
            and recovered
            and pending == 0
            and writers.outage
        )
        print(
            f"CHAOS verdict={'PASS' if ok else 'FAIL'} acknowledged={acked} lost={lost} "
            f"duplicated={duplicated} "
            f"summarized_twice={summarized_twice} unexpected={unknown} outage_503s={len(writers.outage)} "
            f"outage_503_max_ms={max((o[0] for o in writers.outage), default=0) * 1000:.0f} "
            f"slow_or_bare_503s={len(slow_503)} worker_killed={victim} recovered={recovered} "
            f"pending_after={pending} client_errors={dict(writers.errors)}"
        )
        for elapsed, retry_after, code, started in slow_503:
            print(
                f"  slow or bare 503: {elapsed * 1000:.0f} ms code={code} Retry-After={retry_after} "
                f"started {started - outage_at:+.2f} s from the Redis stop"
            )
        print(f"gunicorn log: {app.log}")
        return 0 if ok else 1
    finally:
        if app is not None:
            app.stop()
        llm.terminate()
        llm.wait(timeout=10)
        redis.stop()


def _restart(redis: RedisServer, port: int) -> None:
    """Start the same redis-server again on the same port and data directory."""
    redis.port = port
    redis.start()
    wait_for_port(port)


if __name__ == "__main__":
    sys.exit(main())
