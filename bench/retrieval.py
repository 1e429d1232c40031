"""``make bench-retrieval``: long-term memory's costs, as ratios to a plain GET measured in
the same run.

The project runs as shipped (``config/gunicorn.conf.py``: 2 gthread workers x 4 threads,
INFO logs, metrics on) with embeddings from the project's fake OpenAI-compatible server, on
a private ``redis-server`` (keyword BM25 and exact vector search in the worker) and, when
``scripts/redis-stack.sh`` can provision it, on a Redis Stack server (vectors in a
RediSearch HNSW index). For sessions of 1,000 and 10,000 messages it prints:

* p50/p99 of retrieval (keyword, vector, hybrid) and of context assembly (without and with
  a query) from one keep-alive client, each ÷ the p50/p99 of ``GET /memory`` on the same
  session, the kinds interleaved in rounds;
* indexing throughput: messages posted (100 per POST) until all are searchable;
* Redis bytes per archived message (the archive alone) and per message for the index.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from bench.run import ADMIN, gunicorn_project  # noqa: E402
from devtools.fake_llm import FakeLLM  # noqa: E402
from devtools.processes import RedisServer, redis_stack_server  # noqa: E402

_VOCABULARY = """
release deploy database migration billing invoice customer cluster disk memory latency
budget roadmap meeting friday monday coffee lunch travel hotel flight oslo paris berlin
cat dog tuna garden weather rain snow summer winter project design review test bug fix
feature login password account email phone support ticket priority urgent backup restore
kubernetes docker nginx redis python flask queue worker cache search index vector summary
"""
WORDS = _VOCABULARY.split()
DIMENSIONS = 256


class Client:
    """One keep-alive HTTP connection, timing each request."""

    def __init__(self, port: int, key: str) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[float, object]:
        started = time.perf_counter()
        self.connection.request(
            method, path, body=json.dumps(body) if body is not None else None, headers=self.headers
        )
        response = self.connection.getresponse()
        data = response.read()
        elapsed = time.perf_counter() - started
        if response.status != 200:
            raise RuntimeError(f"{method} {path} answered {response.status}: {data[:200]!r}")
        return elapsed, json.loads(data)


def sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 30)))


def fill(client: Client, session: str, count: int, rng: random.Random) -> float:
    """Post ``count`` messages, 100 per request; return when all are searchable (seconds)."""
    started = time.perf_counter()
    for first in range(0, count, 100):
        messages = [
            {"role": "Human" if i % 2 == 0 else "AI", "content": sentence(rng)}
            for i in range(first, min(count, first + 100))
        ]
        client.call("POST", f"/sessions/{quote(session)}/memory", {"messages": messages})
    while True:
        _, body = client.call("GET", f"/sessions/{quote(session)}/memory")
        if body["pending_index"] == 0 and body["pending_summary"] == 0:  # type: ignore[index]
            return time.perf_counter() - started
        time.sleep(0.05)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latencies(
    client: Client, session: str, rounds: int, per_round: int, rng: random.Random
) -> dict[str, list[float]]:
    path = f"/sessions/{quote(session)}"
    kinds = {
        "GET memory": lambda: client.call("GET", f"{path}/memory"),
        "retrieval keyword": lambda: client.call(
            "POST", f"{path}/retrieval", {"text": sentence(rng), "mode": "keyword"}
        ),
        "retrieval vector": lambda: client.call(
            "POST", f"{path}/retrieval", {"text": sentence(rng), "mode": "vector"}
        ),
        "retrieval hybrid": lambda: client.call(
            "POST", f"{path}/retrieval", {"text": sentence(rng), "mode": "hybrid"}
        ),
        "context": lambda: client.call("GET", f"{path}/context?model=gpt-4o&max_tokens=4000"),
        "context + query": lambda: client.call(
            "GET", f"{path}/context?model=gpt-4o&max_tokens=4000&k=5&query={quote(sentence(rng))}"
        ),
    }
    samples: dict[str, list[float]] = {name: [] for name in kinds}
    for run in kinds.values():  # warm-up
        for _ in range(5):
            run()
    for _ in range(rounds):
        for name, run in kinds.items():
            samples[name] += [run()[0] for _ in range(per_round)]
    return samples


def redis_bytes(client: redis.Redis, tenant: str, session: str) -> tuple[int, int, int]:
    """(archived messages, bytes of the archive, bytes of the keyword and vector index)."""
    tag = f"rc:{{{tenant}:{quote(session, safe='')}}}"
    archived = client.zcard(f"{tag}:a")
    archive = client.memory_usage(f"{tag}:a", samples=0) or 0
    index = sum(client.memory_usage(f"{tag}:{suffix}", samples=0) or 0 for suffix in ("x", "d", "v"))
    index += sum(
        client.memory_usage(key, samples=0) or 0 for key in client.scan_iter(match=f"rc:vec:{{{tenant}:*")
    )
    return archived, archive, index


def measure(name: str, redis_url: str, fake: FakeLLM, sizes: list[int], rounds: int, per_round: int) -> None:
    store = redis.Redis.from_url(redis_url)
    store.flushall()
    project = gunicorn_project(
        redis_url,
        fake.base_url,
        RECOLLECT_LOG_LEVEL="INFO",
        GUNICORN_ACCESSLOG="-",
        RECOLLECT_EMBEDDING_MODEL="fake-embedding",
        RECOLLECT_EMBEDDING_DIMENSIONS=str(DIMENSIONS),
    )
    try:
        key = _tenant(project.port)
        client = Client(project.port, key)
        rng = random.Random(7)
        for size in sizes:
            session = f"bench-{size}"
            seconds = fill(client, session, size, rng)
            archived, archive_bytes, index_bytes = redis_bytes(store, "bench", session)
            raw = _raw_bytes(store, session)
            print(
                f"{name} size={size} indexing: {size} messages searchable in {seconds:.1f} s "
                f"({size / seconds:.0f} msg/s, posts and index passes overlapping)"
            )
            print(
                f"{name} size={size} bytes: archive "
                f"{archive_bytes / max(1, archived):.0f} B per archived message "
                f"({archive_bytes / max(1, raw):.2f}x its role+content bytes); index "
                f"{index_bytes / size:.0f} B per message (keyword + {DIMENSIONS}-dim vectors)"
            )
            samples = latencies(client, session, rounds, per_round, rng)
            base50 = statistics.median(samples["GET memory"])
            base99 = percentile(samples["GET memory"], 0.99)
            for kind, values in samples.items():
                p50, p99 = statistics.median(values), percentile(values, 0.99)
                print(
                    f"{name} size={size} {kind}: p50 {p50 * 1000:.2f} ms ({p50 / base50:.2f}x GET) "
                    f"p99 {p99 * 1000:.2f} ms ({p99 / base99:.2f}x GET)"
                )
    finally:
        project.stop()
        store.close()


def _tenant(port: int) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = json.dumps({"id": "bench", "rate_limit": "10000000/minute"})
    connection.request(
        "POST",
        "/admin/tenants",
        body=body,
        headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"},
    )
    return json.loads(connection.getresponse().read())["api_key"]


def _raw_bytes(store: redis.Redis, session: str) -> int:
    tag = f"rc:{{bench:{quote(session, safe='')}}}"
    total = 0
    for element in store.zrange(f"{tag}:a", 0, -1):
        message = json.loads(element)
        total += len(message["r"].encode()) + len(message["c"].encode())
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="session sizes, comma-separated")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--per-round", type=int, default=25)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    fake = FakeLLM().start()
    workdir = Path(tempfile.mkdtemp(prefix="recollect-bench-retrieval-"))
    plain = RedisServer(workdir / "plain").start()
    try:
        measure("plain-redis", plain.url, fake, sizes, args.rounds, args.per_round)
    finally:
        plain.stop()
    binary = redis_stack_server()
    if binary is None:
        print("redis-stack: not measured (scripts/redis-stack.sh could not provision it)")
    else:
        stack = RedisServer(workdir / "stack", binary=binary).start()
        try:
            measure("redis-stack", stack.url, fake, sizes, args.rounds, args.per_round)
        finally:
            stack.stop()
    fake.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
