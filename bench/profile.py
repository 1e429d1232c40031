"""``python -m bench.profile get|post``: where a gunicorn worker's CPU goes under wrk load.

Starts the same stack as ``bench.run`` (private redis-server, fake LLM, the project under
gunicorn), loads it with wrk, samples one worker with ``py-spy`` (on-CPU samples only) and
prints the share of samples spent in each request phase and in the busiest functions.
Writes the raw collapsed stacks next to the printed path for a flame graph.
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run import gunicorn_project, seed_project, wrk  # noqa: E402
from devtools.fake_llm import FakeLLM  # noqa: E402
from devtools.processes import RedisServer  # noqa: E402

# (label, substring of a frame) — the first match from the top of the stack wins.
PHASES = [
    ("rate limiter (flask-limiter + limits)", "flask_limiter/"),
    ("rate limiter (flask-limiter + limits)", "limits/"),
    ("authentication", "app/auth.py"),
    ("metrics (prometheus-client)", "prometheus_client/"),
    ("request log", "config/logging.py"),
    ("pydantic validation", "pydantic"),
    ("fold runner (summarization)", "app/domain/folding/"),
    ("fold runner (summarization)", "openai/"),
    ("domain (app/domain/ + redis-py below it)", "app/domain/"),
    ("redis-py (other callers)", "redis/"),
    ("views", "app/memory/"),
    ("flask / werkzeug", "flask/"),
    ("flask / werkzeug", "werkzeug/"),
    ("gunicorn", "gunicorn/"),
]


def phase_of(stack: str) -> str:
    frames = stack.split(";")
    for label, needle in PHASES:
        if any(needle in frame for frame in frames):
            return label
    return "other"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=["get", "post"])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--window", type=int, default=1000, help="RECOLLECT_WINDOW_SIZE (12 to include folds in the profile)"
    )
    parser.add_argument("--llm-latency", type=float, default=0.0, help="seconds the fake LLM takes")
    args = parser.parse_args(argv)
    py_spy = Path(sys.executable).parent / "py-spy"
    if not py_spy.exists():
        print("py-spy is not installed: .venv/bin/pip install py-spy", file=sys.stderr)
        return 1

    workdir = Path(tempfile.mkdtemp(prefix="recollect-profile-"))
    redis = RedisServer(workdir / "redis").start()
    fake = FakeLLM().start()
    fake.configure(latency=args.llm_latency)
    project = gunicorn_project(redis.url, fake.base_url, RECOLLECT_WINDOW_SIZE=str(args.window))
    try:
        key = seed_project(project.base)
        workers = subprocess.run(
            ["pgrep", "-P", str(project.process.pid)], capture_output=True, text=True, check=True
        ).stdout.split()
        load = threading.Thread(
            target=wrk, args=(project.base, key, args.mode, args.seconds + 2, args.connections)
        )
        load.start()
        out = workdir / f"{args.mode}.collapsed"
        subprocess.run(
            [
                str(py_spy),
                "record",
                "--pid",
                workers[0],
                "--duration",
                str(args.seconds),
                "--rate",
                "250",
                "--format",
                "raw",
                "--output",
                str(out),
                "--nonblocking",
                "--gil",
            ],
            check=True,
            capture_output=True,
        )
        load.join()
    finally:
        project.stop()
        fake.stop()
        redis.stop()

    phases: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    total = 0
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue  # a frame name py-spy could not resolve cleanly
        n = int(count)
        total += n
        phases[phase_of(stack)] += n
        leaves[stack.split(";")[-1]] += n
    print(f"# {args.mode}: {total} on-CPU samples of one worker; stacks in {out}")
    for label, n in phases.most_common():
        print(f"{100 * n / total:5.1f} %  {label}")
    print("# busiest leaf functions")
    for leaf, n in leaves.most_common(15):
        print(f"{100 * n / total:5.1f} %  {leaf}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
