"""What one fold costs, in Redis round trips and CPU, next to what an append costs.

In one process with the Flask test client, a private redis-server and the extractive
summarizer (no LLM: the fold's own cost, not a model's). Every command or pipeline sent to
Redis is counted (the benchmark's own polling excepted). Two runs of the same appends (2
messages per POST over 50 sessions):

* window 1000 — no append ever overflows: the cost of an append alone;
* window 2 — every append overflows, so each one claims a fold that the process's pool
  runs at once (lock and read, summarize, commit, unlock, due-set bookkeeping, re-check).

A fold's round trips are those sent by the fold pool's threads, per fold that committed;
its CPU is the second run's, less its appends' at the first run's rate, per fold. Long-term
memory is off so that index passes do not mix in. Prints one line per figure.

    python -m bench.fold_cost [--appends 400]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from devtools.processes import RedisServer  # noqa: E402

ADMIN = "fold-cost-admin-token-0123456789"


class Counter:
    """Requests sent to Redis (a pipeline is one): by every thread, and by the fold pool's
    threads alone. The benchmark's own polling is not counted."""

    def __init__(self) -> None:
        self.sent = 0
        self.sent_by_folds = 0
        self._lock = threading.Lock()
        self._local = threading.local()
        original = redis.connection.AbstractConnection.send_packed_command
        counter = self

        def counting(connection, command, check_health=True):  # noqa: ANN001, ANN202
            if not getattr(counter._local, "paused", False):
                by_fold = threading.current_thread().name.startswith("recollect-fold_")
                with counter._lock:
                    counter.sent += 1
                    counter.sent_by_folds += by_fold
            return original(connection, command, check_health)

        redis.connection.AbstractConnection.send_packed_command = counting

    def uncounted_zcard(self, client: redis.Redis, key: str) -> int:
        self._local.paused = True
        try:
            return int(client.zcard(key))
        finally:
            self._local.paused = False


@dataclass(frozen=True)
class Run:
    appends: int
    folds: int
    round_trips: int  # every thread
    fold_round_trips: int  # the fold pool's threads (not its sweeper)
    cpu_ms: float  # the whole process


def folds_done() -> float:
    from app.metrics import FOLDS

    return FOLDS.labels("done")._value.get()


def run(redis_url: str, window: int, appends: int, counter: Counter) -> Run:
    """``appends`` POSTs to 50 sessions, then wait until the pool has folded what they claimed."""
    from app import create_app
    from config import load_settings

    settings = load_settings(
        redis_url=redis_url,
        admin_token=ADMIN,
        summarizer="extractive",
        window_size=window,
        long_term_memory=False,
        index_sweep_interval_seconds=600,
        log_level="WARNING",
        rate_limit="10000000/minute",
    )
    app = create_app(settings)
    resources = app.extensions["recollect"]
    resources.start_background_work()
    client = app.test_client()
    tenant = f"w{window}"
    key = client.post(
        "/admin/tenants", json={"id": tenant}, headers={"Authorization": f"Bearer {ADMIN}"}
    ).json["api_key"]
    headers = {"Authorization": f"Bearer {key}"}
    body = {
        "messages": [
            {"role": "Human", "content": "What did we decide about the release?"},
            {"role": "AI", "content": "We ship on the 14th, after the security review."},
        ]
    }
    for s in range(50):  # sessions exist, caches are warm
        client.post(f"/sessions/s{s}/memory", json=body, headers=headers)
    due = resources.keyspace.due
    poller = redis.Redis.from_url(redis_url)

    def settled() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and counter.uncounted_zcard(poller, due):
            time.sleep(0.05)
        time.sleep(0.3)

    settled()
    sent, by_folds, folds = counter.sent, counter.sent_by_folds, folds_done()
    cpu = time.process_time()
    for i in range(appends):
        client.post(f"/sessions/s{i % 50}/memory", json=body, headers=headers)
    settled()
    measured = Run(
        appends=appends,
        folds=int(folds_done() - folds),
        round_trips=counter.sent - sent,
        fold_round_trips=counter.sent_by_folds - by_folds,
        cpu_ms=(time.process_time() - cpu) * 1000,
    )
    resources.shutdown(wait=True)
    return measured


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appends", type=int, default=400)
    args = parser.parse_args(argv)
    if shutil.which("redis-server") is None:
        print("redis-server is missing (apt-get install redis-server)", file=sys.stderr)
        return 1
    server = RedisServer(Path(tempfile.mkdtemp(prefix="recollect-fold-cost-"))).start()
    counter = Counter()
    try:
        url = f"redis://127.0.0.1:{server.port}/0"
        plain = run(url, 1000, args.appends, counter)
        folding = run(url, 2, args.appends, counter)
    finally:
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)
    append_trips = plain.round_trips / plain.appends
    append_cpu = plain.cpu_ms / plain.appends
    fold_trips = folding.fold_round_trips / max(folding.folds, 1)
    fold_cpu = (folding.cpu_ms - folding.appends * append_cpu) / max(folding.folds, 1)
    print(f"append alone: {append_trips:.2f} Redis round trips, {append_cpu:.2f} ms CPU (app process)")
    print(
        f"{folding.appends} overflowing appends, {folding.folds} folds: "
        f"{folding.round_trips / folding.appends:.2f} round trips and "
        f"{folding.cpu_ms / folding.appends:.2f} ms CPU per append"
    )
    print(
        f"one fold: {fold_trips:.2f} round trips, {fold_cpu:.2f} ms CPU = {fold_cpu / append_cpu:.2f} "
        "appends' CPU (target: <= 2 round trips, <= 2 appends)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
