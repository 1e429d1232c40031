"""``python -m bench.export_memory``: export and import hold constant memory, whatever a
session holds.

On a private ``redis-server``, for sessions of 1,000, 10,000 and 100,000 messages (half
archived, half above the summary: the window's share and the rest archived by the import),
each phase runs in a fresh process, so its peak RSS is its own:

* import: the NDJSON lines are generated lazily and imported through
  ``TransferService.import_session`` (staged in batches, committed by one script);
* export: ``TransferService.export_session`` streamed into a digest, as the HTTP route
  streams it.

It prints, per size and phase, the tracemalloc peak (Python allocations made during the
phase), the process's peak RSS, the time, and the export's byte count.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devtools.processes import RedisServer  # noqa: E402

SIZES = (1_000, 10_000, 100_000)
WORDS = [
    *("release", "deploy", "database", "migration", "billing", "invoice", "customer", "cluster"),
    *("disk", "memory", "latency", "budget", "roadmap", "meeting", "friday", "coffee", "lunch"),
    *("travel", "hotel", "flight", "cat", "dog", "tuna", "garden", "weather", "rain"),
]


def _transfer(redis_url: str):
    import redis

    from app.domain.keyspace import Keyspace
    from app.domain.memory.store import SessionStore
    from app.domain.tenancy.authentication import Principal
    from app.domain.tenancy.policy import Policy
    from app.domain.transfer.service import TransferService
    from app.domain.transfer.store import TransferStore
    from app.extensions import policy_defaults
    from config import Settings

    client = redis.Redis.from_url(redis_url)
    keys = Keyspace("rc")
    policy = policy_defaults(Settings()).resolve(Policy(window_size=1000))
    return TransferService(TransferStore(client, keys), SessionStore(client, keys)), Principal(
        "bench", None, policy
    )


def _lines(count: int):
    rng = random.Random(count)  # noqa: S311 - test data
    yield (
        json.dumps({"type": "session", "summary": "so far", "summarized_through": count // 2}).encode()
        + b"\n"
    )
    for i in range(count):
        message = {
            "type": "message",
            "role": "Human" if i % 2 == 0 else "AI",
            "content": " ".join(rng.choice(WORDS) for _ in range(16)),
            "created_at": "2027-01-15T08:00:00.000Z",
        }
        if i % 10 == 0:
            message["metadata"] = {"turn": i, "tags": ["bench"]}
        yield json.dumps(message).encode() + b"\n"


def phase(redis_url: str, kind: str, count: int) -> dict:
    """Run one phase in this process and measure it."""
    transfer, principal = _transfer(redis_url)
    session_id = f"s{count}"
    # Warm what loads once per process (tiktoken's ranks, the scripts) before measuring.
    from app.domain import tokens

    tokens.count_tokens("warm up", principal.policy.summary_model)
    list(transfer.export_tenant("nobody"))
    tracemalloc.start()
    started = time.perf_counter()
    exported = 0
    digest = hashlib.sha256()
    if kind == "import":
        result = transfer.import_session(principal, session_id, _lines(count))
        assert result.messages == count, result
    else:
        for line in transfer.export_session("bench", session_id):
            exported += len(line)
            digest.update(line)
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "kind": kind,
        "messages": count,
        "seconds": round(seconds, 2),
        "tracemalloc_peak_kib": round(peak / 1024),
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "exported_bytes": exported,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--phase", nargs=3, metavar=("REDIS_URL", "KIND", "COUNT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        url, kind, count = args.phase
        print(json.dumps(phase(url, kind, int(count))))
        return
    with tempfile.TemporaryDirectory() as workdir:
        server = RedisServer(Path(workdir)).start()
        try:
            rows = []
            for count in args.sizes:
                for kind in ("import", "export"):
                    out = subprocess.run(  # noqa: S603 - this interpreter, this script
                        [
                            sys.executable,
                            "-m",
                            "bench.export_memory",
                            "--phase",
                            server.url,
                            kind,
                            str(count),
                        ],
                        cwd=ROOT,
                        check=True,
                        capture_output=True,
                        text=True,
                    )
                    rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
                    print(json.dumps(rows[-1]), flush=True)
        finally:
            server.stop()
    print()
    print("| messages | phase | tracemalloc peak | peak RSS | time | export size |")
    print("|---:|---|---:|---:|---:|---:|")
    for row in rows:
        size = f"{row['exported_bytes'] / 1e6:.1f} MB" if row["exported_bytes"] else ""
        print(
            f"| {row['messages']:,} | {row['kind']} | {row['tracemalloc_peak_kib']:,} KiB | "
            f"{row['max_rss_mib']} MiB | {row['seconds']} s | {size} |"
        )


if __name__ == "__main__":
    main()
