"""``make bench``: Recollect against the floor app, measured in the same run.

Everything runs locally on loopback: a private ``redis-server``, the project under gunicorn
with ``config/gunicorn.conf.py`` (2 gthread workers x 4 threads, authentication, rate
limits, metrics and validation all on), the project's fake LLM, and — when
``../shared/bench/floor_app.py`` is present — the floor app under the same gunicorn
settings. Load comes from ``wrk`` with the floor's own ``wrk_memory.lua``; rounds alternate
project, floor, project, floor and the medians are compared, because this machine is shared
and noisy. Prints one line per figure and writes nothing else; docs/benchmarks.md holds the
figures of a documented run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from app.domain.memory.stored_format import api_message  # noqa: E402
from devtools.processes import RedisServer, free_port, wait_for_port  # noqa: E402

SHARED_BENCH = ROOT.parent / "shared" / "bench"
LUA = SHARED_BENCH / "wrk_memory.lua"
ADMIN = "bench-admin-token"


def http(base: str, method: str, path: str, token: str | None = None, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback only
        return json.loads(response.read() or b"null")


class Proc:
    def __init__(self, args: list[str], env: dict[str, str], cwd: Path, port: int) -> None:
        self.port = port
        # stderr goes to a file (not a pipe nobody drains) so a failed run can be read.
        self.log = Path(tempfile.mkstemp(prefix="recollect-bench-", suffix=".log")[1])
        with self.log.open("wb") as errors:
            self.process = subprocess.Popen(  # noqa: S603 - our own commands
                args, env={**os.environ, **env}, cwd=cwd, stdout=subprocess.DEVNULL, stderr=errors
            )
        wait_for_port(port, timeout=30)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def gunicorn_project(redis_url: str, llm_url: str, root: Path = ROOT, **env: str) -> Proc:
    """The app of the checkout at ``root`` under its own config/gunicorn.conf.py, run by that
    checkout's .venv when it has one (a baseline: ``git worktree add`` of an earlier commit)."""
    port = free_port()
    settings = {
        "REDIS_URL": redis_url,
        "RECOLLECT_ADMIN_TOKEN": ADMIN,
        "OPENAI_API_KEY": "bench",
        "OPENAI_BASE_URL": llm_url,
        "GUNICORN_WORKERS": "2",
        "GUNICORN_THREADS": "4",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="recollect-bench-prom-"),
        **env,
    }
    python = root / ".venv" / "bin" / "python" if root != ROOT else Path(sys.executable)
    if not python.exists():
        python = Path(sys.executable)
    return Proc(
        [str(python), "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "wsgi:app"], settings, root, port
    )


def gunicorn_floor(redis_url: str) -> Proc:
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "gunicorn",
        "-w",
        "2",
        "-k",
        "gthread",
        "--threads",
        "4",
        # config/gunicorn.conf.py's socket per worker and worker recycling, so both have
        # connections spread alike and pay for recycling alike.
        "--reuse-port",
        "--max-requests",
        "100000",
        "--max-requests-jitter",
        "10000",
        "-b",
        f"127.0.0.1:{port}",
        "floor_app:app",
    ]
    return Proc(args, {"REDIS_URL": redis_url}, SHARED_BENCH, port)


def cpu_seconds(master: int) -> float:
    """CPU time (user + system) of a gunicorn master, its live workers and the workers it
    has reaped (recycled or killed: without them a round's CPU could come out negative)."""
    ticks = os.sysconf("SC_CLK_TCK")
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    total = 0.0
    for pid in [str(master), *children]:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except FileNotFoundError:
            continue  # a worker that exited in between
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
        if pid == str(master):
            total += (int(fields[13]) + int(fields[14])) / ticks  # cutime, cstime: reaped workers
    return total


def worker_cpu(master: int) -> dict[str, float]:
    """CPU seconds of each live worker of a gunicorn master."""
    ticks = os.sysconf("SC_CLK_TCK")
    seconds = {}
    for pid in Path(f"/proc/{master}/task/{master}/children").read_text().split():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except FileNotFoundError:
            continue
        seconds[pid] = (int(fields[11]) + int(fields[12])) / ticks
    return seconds


def measured(proc: Proc, key: str, mode: str, seconds: int, connections: int) -> dict[str, float]:
    """One wrk run plus the app's CPU milliseconds per request during it, and the share of
    that CPU the busiest worker used (0.5 = evenly spread over two workers)."""
    before, workers_before = cpu_seconds(proc.process.pid), worker_cpu(proc.process.pid)
    result = wrk(proc.base, key, mode, seconds, connections)
    result["cpu_ms"] = (cpu_seconds(proc.process.pid) - before) * 1000 / max(1.0, result["requests"])
    spent = [cpu - workers_before.get(pid, 0.0) for pid, cpu in worker_cpu(proc.process.pid).items()]
    result["busiest_worker_share"] = max(spent) / sum(spent) if spent and sum(spent) > 0 else 1.0
    return result


def wrk(base: str, key: str, mode: str, seconds: int, connections: int) -> dict[str, float]:
    out = subprocess.run(  # noqa: S603
        ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s", "-s", str(LUA), base],
        env={**os.environ, "BENCH_KEY": key, "BENCH_MODE": mode},
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    line = next(line for line in out.splitlines() if line.startswith("BENCH "))
    fields = dict(part.split("=") for part in line.split()[1:])
    return {k: float(v) for k, v in fields.items() if k != "mode"}


def seed_project(base: str) -> str:
    key = http(base, "POST", "/admin/tenants", ADMIN, {"id": "bench", "rate_limit": "10000000/minute"})[
        "api_key"
    ]
    for s in range(100):
        messages = [
            {
                "role": "Human" if i % 2 == 0 else "AI",
                "content": f"message {i} of session {s}: " + "lorem ipsum " * 8,
            }
            for i in range(12)
        ]
        http(
            base,
            "POST",
            f"/sessions/s{s}/memory",
            key,
            {"messages": messages, "context": "The user asked about many things. " * 6},
        )
    return key


def alternate(runs: list[tuple[str, callable]], rounds: int) -> dict[str, list[dict[str, float]]]:
    """Every run once per round, each round starting one further along the list, so no app
    always goes first (right after another app's load, or right after a restart)."""
    results: dict[str, list[dict[str, float]]] = {name: [] for name, _ in runs}
    for r in range(rounds):
        start = r % len(runs)
        for name, run in runs[start:] + runs[:start]:
            results[name].append(run())
    return results


def median(samples: list[dict[str, float]], field: str) -> float:
    return statistics.median(s[field] for s in samples)


def extra_figures(redis_url: str, fake, args: argparse.Namespace) -> None:  # noqa: ANN001 - FakeLLM
    client = redis.Redis.from_url(redis_url)
    # POST p99 while every request triggers summarization against a 2 s LLM, vs none: both
    # instances up at once (databases 1 and 2), rounds alternating, medians compared.
    base_url = redis_url.rsplit("/", 1)[0]
    fake.configure(latency=2.0)
    quiet = gunicorn_project(f"{base_url}/1", fake.base_url, RECOLLECT_WINDOW_SIZE="1000")
    busy = gunicorn_project(f"{base_url}/2", fake.base_url, RECOLLECT_WINDOW_SIZE="2")
    quiet_key, busy_key = seed_project(quiet.base), seed_project(busy.base)
    calls = fake.chat_calls
    results = alternate(
        [
            ("quiet", lambda: measured(quiet, quiet_key, "post", args.seconds, args.connections)),
            ("busy", lambda: measured(busy, busy_key, "post", args.seconds, args.connections)),
        ],
        args.rounds,
    )
    folds = fake.chat_calls - calls
    quiet.stop()
    busy.stop()
    fake.configure(latency=0.0)
    base_p99, folding_p99 = median(results["quiet"], "p99_ms"), median(results["busy"], "p99_ms")
    print(
        f"POST p99 with summarization on every request (LLM 2 s, {folds} LLM calls started): "
        f"{folding_p99:.1f} ms vs {base_p99:.1f} ms without => {folding_p99 / base_p99:.2f}x "
        f"(target <= 1.1); throughput {median(results['busy'], 'rps'):.0f} vs "
        f"{median(results['quiet'], 'rps'):.0f} rps; app CPU per request "
        f"{median(results['busy'], 'cpu_ms'):.2f} vs {median(results['quiet'], 'cpu_ms'):.2f} ms"
    )

    # Redis bytes per stored message vs the message's raw bytes (role + content).
    client.flushdb()
    project = gunicorn_project(redis_url, fake.base_url, RECOLLECT_WINDOW_SIZE="1000")
    key = seed_project(project.base)
    used = raw = 0
    for s in range(100):
        window = f"rc:{{bench:s{s}}}:w"
        used += client.memory_usage(window, samples=0) or 0
        for item in client.lrange(window, 0, -1):
            message = json.loads(api_message(item))
            raw += len(message["role"].encode()) + len(message["content"].encode())
    print(
        f"Redis bytes per stored message / raw message bytes: {used / raw:.2f} (target <= 2.0; "
        f"windows only: {used} bytes for {raw} raw bytes)"
    )

    # GET throughput with 100,000 sessions stored vs 100.
    small = statistics.median(
        wrk(project.base, key, "get", args.seconds, args.connections)["rps"] for _ in range(args.rounds)
    )
    pipe = client.pipeline(transaction=False)
    now = int(time.time() * 1000)
    body = json.dumps(
        {"id": 1, "role": "Human", "content": "filler " * 10, "created_at": "x", "token_count": 20}
    )
    for s in range(100, 100_000):
        tag = f"rc:{{bench:x{s}}}"
        pipe.rpush(f"{tag}:w", body)
        pipe.hset(f"{tag}:m", mapping={"next": 1, "gen": "g", "wt": 20})
        pipe.zadd("rc:{bench}:sessions", {f"x{s}": now})
        if s % 5000 == 0:
            pipe.execute()
    pipe.execute()
    large = statistics.median(
        wrk(project.base, key, "get", args.seconds, args.connections)["rps"] for _ in range(args.rounds)
    )
    print(
        f"GET with 100,000 sessions stored: {large:.0f} rps vs {small:.0f} with 100 => {large / small:.2f} "
        f"(target >= 0.9)"
    )
    project.stop()
    client.close()


# What `make bench` compares (issue 14): the configuration users run, and a quiet one.
CONFIGS: dict[str, dict[str, str]] = {
    # config/gunicorn.conf.py and the app's defaults as the Dockerfile and compose file ship
    # them: INFO logs (the app's one request line), gunicorn's access log off, metrics off.
    "shipped": {},
    "quiet": {"RECOLLECT_LOG_LEVEL": "WARNING"},
}
CONFIG_NOTES = {
    "shipped": "as shipped (INFO request lines, default window 12 with folds in the same workers)",
    "quiet": "logs at WARNING, otherwise as shipped",
}
TARGETS = {"get": 0.90, "post": 0.80, "post_folds": 0.60, "p50": 1.2, "p99": 1.3}


def _apps(redis_url: str, args: argparse.Namespace) -> list[tuple[str, Path, str]]:
    """(name, checkout, Redis database) of this checkout and of the baseline, if any."""
    apps = [("project", ROOT, redis_url)]
    if args.baseline:
        apps.append(("baseline", args.baseline, redis_url.rpartition("/")[0] + "/1"))
    return apps


def _pinned(root: Path) -> dict[str, str]:
    # An older checkout may default to writing gunicorn's access log, which this one ships off.
    return {} if root == ROOT else {"GUNICORN_ACCESSLOG": "off"}


def _label(app_name: str) -> str:
    return "" if app_name == "project" else f"({app_name}) "


def _report(
    app_name: str,
    mode: str,
    connections: int,
    runs: list[dict[str, float]],
    floor: list[dict[str, float]],
    figures: dict[str, float],
) -> None:
    rps = median(runs, "rps") / median(floor, "rps")
    p50 = median(runs, "p50_ms") / median(floor, "p50_ms")
    p99 = median(runs, "p99_ms") / median(floor, "p99_ms")
    cpu = median(runs, "cpu_ms") / median(floor, "cpu_ms")
    share = median(runs, "busiest_worker_share")
    errors = sum(r["errors"] for r in runs)
    print(
        f"{_label(app_name)}{mode.upper()} -c{connections}: project {median(runs, 'rps'):.0f} rps "
        f"(p50 {median(runs, 'p50_ms'):.2f} ms, p99 {median(runs, 'p99_ms'):.2f} ms, non-2xx {errors:.0f}) / "
        f"floor {median(floor, 'rps'):.0f} rps => throughput {rps:.2f}, p50 {p50:.2f}x, p99 {p99:.2f}x, "
        f"CPU/request {cpu:.2f}x; busiest worker's share of the CPU {share:.2f} (rounds: "
        f"{[round(r['rps']) for r in runs]} vs {[round(r['rps']) for r in floor]})"
    )
    if connections == 1:
        figures[f"{mode}_p50"], figures[f"{mode}_p99"] = p50, p99
        _keep_rounds(figures, f"{mode}_p50", runs, "p50_ms")
        _keep_rounds(figures, f"{mode}_p99", runs, "p99_ms")
    else:
        figures[mode] = rps
        figures[f"{mode}_floor_rps"] = median(floor, "rps")
        _keep_rounds(figures, mode, runs, "rps")


def _keep_rounds(figures: dict, figure: str, runs: list[dict[str, float]], field: str) -> None:
    # Each round's raw value, for the paired comparison with a baseline measured in it.
    figures.setdefault("rounds", {})[figure] = [r[field] for r in runs]


def _paired(now: list[float], before: list[float]) -> str:
    """This checkout ÷ the baseline round by round (both ran minutes apart at most in the
    same round, against the same floor), and the median of those: steadier than the ratio
    of two medians on a machine whose speed drifts between rounds."""
    ratios = [a / b for a, b in zip(now, before, strict=True)]
    return f"per round {' '.join(f'{r:.2f}' for r in ratios)} => median {statistics.median(ratios):.2f}"


def compare_config(name: str, redis_url: str, fake, floor: Proc, args: argparse.Namespace) -> list[str]:  # noqa: ANN001
    """The throughput and latency figures of one configuration against the floor, and of the
    ``--baseline`` checkout in the same rounds when one is given."""
    env = CONFIGS[name]
    floor_key = "rk_floor_benchmark_key_0123456789abcdef"
    apps: dict[str, tuple[Proc, str]] = {}
    # The append + read path the floor also has: a window larger than the run keeps folds out.
    for app_name, root, url in _apps(redis_url, args):
        redis.Redis.from_url(url).flushdb()
        proc = gunicorn_project(
            url, fake.base_url, root, RECOLLECT_WINDOW_SIZE="1000", **env, **_pinned(root)
        )
        apps[app_name] = (proc, seed_project(proc.base))
    figures: dict[str, dict[str, float]] = {app_name: {} for app_name in apps}
    try:
        for mode in ("get", "post"):
            for connections in (args.connections, 1):
                runs = [
                    (
                        app_name,
                        lambda p=proc, k=key, m=mode, c=connections: measured(p, k, m, args.seconds, c),
                    )
                    for app_name, (proc, key) in apps.items()
                ]
                runs.append(
                    ("floor", lambda m=mode, c=connections: measured(floor, floor_key, m, args.seconds, c))
                )
                results = alternate(runs, args.rounds)
                for app_name in apps:
                    _report(
                        app_name, mode, connections, results[app_name], results["floor"], figures[app_name]
                    )
    finally:
        for proc, _ in apps.values():
            proc.stop()
    # The same POST load at the default window: a fold every few appends per session, in
    # the same workers (the fake LLM answers at once). With a baseline, rounds alternate.
    folding: dict[str, tuple[Proc, str]] = {}
    try:
        for app_name, root, url in _apps(redis_url, args):
            redis.Redis.from_url(url).flushdb()
            proc = gunicorn_project(url, fake.base_url, root, **env, **_pinned(root))
            folding[app_name] = (proc, seed_project(proc.base))
        calls = {app_name: 0 for app_name in folding}

        def folds_round(app_name: str) -> dict[str, float]:
            proc, key = folding[app_name]
            before = fake.chat_calls
            result = measured(proc, key, "post", args.seconds, args.connections)
            # Let the folds this round left queued finish before the next app's round.
            deadline = time.monotonic() + 10
            seen = -1
            while fake.chat_calls != seen and time.monotonic() < deadline:
                seen = fake.chat_calls
                time.sleep(0.5)
            calls[app_name] += fake.chat_calls - before
            return result

        results = alternate(
            [(app_name, lambda a=app_name: folds_round(a)) for app_name in folding], args.rounds
        )
    finally:
        for proc, _ in folding.values():
            proc.stop()
    for app_name, runs in results.items():
        figures[app_name]["post_folds"] = median(runs, "rps") / figures[app_name]["post_floor_rps"]
        _keep_rounds(figures[app_name], "post_folds", runs, "rps")
        print(
            f"{_label(app_name)}POST -c{args.connections} at the default window (folds in the same workers): "
            f"{median(runs, 'rps'):.0f} rps => {figures[app_name]['post_folds']:.2f} of the floor; CPU per "
            f"request {median(runs, 'cpu_ms'):.2f} ms; {calls[app_name]} LLM calls"
        )
    if args.baseline:
        print(f"[{name}] this checkout ÷ the baseline, each as a ratio to the floor in the same rounds:")
        for figure in ("get", "post", "post_folds", "get_p50", "post_p50", "get_p99", "post_p99"):
            now, before = figures["project"][figure], figures["baseline"][figure]
            paired = _paired(figures["project"]["rounds"][figure], figures["baseline"]["rounds"][figure])
            ratio = now / before
            print(f"[{name}]   {figure}: {now:.2f} now, {before:.2f} baseline => {ratio:.2f}; {paired}")
    ours = figures["project"]

    def verdict(label: str, value: float, target: float, at_least: bool) -> str:
        ok = value >= target if at_least else value <= target
        sign = ">=" if at_least else "<="
        return f"[{name}] {label}: {value:.2f} (target {sign} {target}) {'met' if ok else 'MISSED'}"

    return [
        verdict("GET throughput", ours["get"], TARGETS["get"], True),
        verdict("POST throughput (append path)", ours["post"], TARGETS["post"], True),
        verdict(
            "POST throughput at the default window, with folds",
            ours["post_folds"],
            TARGETS["post_folds"],
            True,
        ),
        verdict("GET p50 at one client", ours["get_p50"], TARGETS["p50"], False),
        verdict("POST p50 at one client", ours["post_p50"], TARGETS["p50"], False),
        verdict("GET p99 at one client", ours["get_p99"], TARGETS["p99"], False),
        verdict("POST p99 at one client", ours["post_p99"], TARGETS["p99"], False),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Recollect vs the floor app")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="only the GET and POST ratios")
    parser.add_argument(
        "--configs",
        default="shipped,quiet",
        help="comma-separated: shipped (the configuration users run), quiet (logs at WARNING)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout (git worktree add ../before <rev>) measured in the same rounds, "
        "with its own config/gunicorn.conf.py and .venv; prints this checkout's ratios beside its",
    )
    parser.add_argument(
        "--extra-only",
        action="store_true",
        help="only the fold-on-every-request p99, Redis bytes per message and 100,000 sessions",
    )
    args = parser.parse_args(argv)
    for tool in ("wrk", "redis-server"):
        if shutil.which(tool) is None:
            print(f"{tool} is missing (apt-get install {tool})", file=sys.stderr)
            return 1
    if not LUA.exists():
        print(f"{LUA} not found: the floor app and its wrk script live in ../shared/bench", file=sys.stderr)
        return 1

    from devtools.fake_llm import FakeLLM

    redis_server = RedisServer(Path(tempfile.mkdtemp(prefix="recollect-bench-"))).start()
    redis_port = redis_server.port
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    fake = FakeLLM().start()
    procs: list[Proc] = []
    try:
        if args.extra_only:
            extra_figures(redis_url, fake, args)
            return 0
        floor = gunicorn_floor(f"redis://127.0.0.1:{redis_port}/15")
        procs.append(floor)
        subprocess.run(
            [sys.executable, "floor_app.py", "seed"],
            cwd=SHARED_BENCH,
            check=True,  # noqa: S603
            env={**os.environ, "REDIS_URL": f"redis://127.0.0.1:{redis_port}/15"},
            stdout=subprocess.DEVNULL,
        )
        print(
            f"# machine: {os.cpu_count()} cores; wrk -c{args.connections} and -c1, {args.seconds}s; "
            f"{args.rounds} alternating rounds; both apps under gunicorn, 2 gthread workers x 4 threads"
        )
        verdicts = []
        for name in args.configs.split(","):
            print(f"\n## {name}: {CONFIG_NOTES[name]}")
            verdicts += compare_config(name, redis_url, fake, floor, args)
        print("\n## targets (ratios to the floor measured in the same run)")
        for line in verdicts:
            print(line)
        for proc in procs:
            proc.stop()
        procs.clear()
        if not args.quick:
            extra_figures(redis_url, fake, args)
    finally:
        for proc in procs:
            proc.stop()
        fake.stop()
        redis_server.stop()
        shutil.rmtree(redis_server.workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
