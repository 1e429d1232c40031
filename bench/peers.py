"""Recollect against its one maintained peer, the Redis Agent Memory Server, in the same run.

    .venv/bin/python -m bench.peers [--quick] [--rounds N] [--seconds S]

Optional, not part of the test suite. Everything runs locally on loopback against one Redis
Stack server (RedisJSON + RediSearch, from ``scripts/redis-stack.sh``) on a free port:

* Recollect under gunicorn with ``config/gunicorn.conf.py`` as shipped (bench/run.py's
  ``shipped`` configuration: authentication, rate limits, validation and INFO request lines
  on), in database 0 under its own ``rc:`` prefix;
* ``agent-memory-server`` 0.15.2 ("AMS") with 2 uvicorn workers; long-term memory and Docket
  off (they need an LLM and a separate task worker), authentication off (its default); in
  database 0 too, because RediSearch indexes only database 0 and AMS makes its
  working-memory index there.

AMS needs Python 3.12, so it gets its own virtualenv, made on the first run under
``${RECOLLECT_CACHE:-~/.cache/recollect}/peers/ams-venv`` (half a minute to a minute) and
reused after.

The work is the same for both: 100 sessions of 12 messages plus a summary; a read is one
session's memory (Recollect ``GET /sessions/{id}/memory``, AMS ``GET /v1/working-memory/{id}``);
a write adds two messages. AMS has no append: a client PUTs the whole working memory back
(``PUT /v1/working-memory/{id}``, the 12 messages, the 2 new ones and the summary), so that is
what its write sends. Load comes from ``wrk``; rounds alternate Recollect, AMS, Recollect, AMS
and medians are compared, because this machine is shared and noisy. Prints one line per
figure with the ratio Recollect / AMS; the goal is at least 2x AMS's throughput.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import run  # noqa: E402
from bench.run import (  # noqa: E402
    CONFIGS,
    Proc,
    alternate,
    cpu_seconds,
    gunicorn_project,
    http,
    measured,
    median,
    seed_project,
)
from devtools.fake_llm import FakeLLM  # noqa: E402
from devtools.processes import RedisServer, free_port, redis_stack_server  # noqa: E402

GOAL_THROUGHPUT = 2.0
CACHE = Path(
    os.environ.get("RECOLLECT_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "recollect"
)
PEER_VENV = CACHE / "peers" / "ams-venv"
# One pip command per group, in this order.
PEER_PACKAGES: list[list[str]] = [
    # agent-memory-server 0.15.2 asks for agent-memory-client>=0.14.1, which was never
    # published: the newest client is installed first and the server without dependencies.
    ["agent-memory-client==0.14.0"],
    ["--no-deps", "agent-memory-server==0.15.2"],
    # The server's own runtime dependencies and ranges, less transformers (imported lazily,
    # only for entity extraction in long-term memory, which is off; it would bring torch)
    # and with mcp<2 (the server imports mcp.server.fastmcp, written against the 1.x line).
    [
        "anthropic>=0.15.0",
        "bcrypt>=4.0.0",
        "cachetools>=6.2.2,<7.0.0",
        "click>=8.1.0",
        "cryptography>=3.4.8",
        "fastapi>=0.115.11",
        "httpx>=0.25.0",
        "litellm>=1.75.5,<=1.82.6",
        "mcp>=1.6.0,<2",
        "numpy>=2.1.0",
        "openai>=1.3.7",
        "pydantic-settings>=2.8.1",
        "pydantic>=2.5.2",
        "pydocket>=0.18.2",
        "python-dotenv>=1.0.0",
        "python-jose[cryptography]>=3.3.0",
        "python-ulid>=3.0.0",
        "pyyaml>=6.0",
        "redisvl>=0.6.0",
        "sniffio>=1.3.1",
        "structlog>=25.2.0",
        "tiktoken>=0.5.1",
        "uvicorn>=0.24.0",
    ],
]
PEER_ENV = {
    "LONG_TERM_MEMORY": "false",
    "USE_DOCKET": "false",
    "DISABLE_AUTH": "true",
    # litellm fetches a price list from the internet at import; its bundled copy will do.
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
}

# Run with `python -c` rather than as a file: uvicorn's workers are started with
# multiprocessing's "spawn", which re-runs a main *file* in every worker (binding again).
#
# The listening socket is made here, not by uvicorn, so that it has TCP_NODELAY: Linux copies
# the option from a listening socket to every socket it accepts. uvicorn 0.30 (and older)
# made its multi-worker socket with protocol 0, which stops asyncio from setting TCP_NODELAY
# on accepted connections; Nagle's algorithm plus delayed ACKs then hold every reply on a
# reused connection for ~40 ms (measured: GET p50 at one client 44 ms with uvicorn 0.30's own
# socket, 1.3 ms with this launcher; 0.55 asks for IPPROTO_TCP and is fine either way).
# uvicorn takes a ready socket with `fd=` (its --fd, as for socket activation), so the peer is
# served alike whichever uvicorn pip resolves.
PEER_LAUNCHER = """
import socket, sys, uvicorn
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
sock.bind(("127.0.0.1", int(sys.argv[1])))
sock.set_inheritable(True)
uvicorn.run("agent_memory_server.main:app", fd=sock.fileno(), workers=int(sys.argv[2]))
"""
PEER_WORKERS = 2

# The two messages bench/run.py's wrk script (../shared/bench/wrk_memory.lua) appends.
NEW_MESSAGES = [
    {"role": "Human", "content": "What did we decide about the release date?"},
    {"role": "AI", "content": "We agreed to ship on the 14th, after the security review."},
]
CONTEXT = "The user asked about many things. " * 6  # seed_project's summary

PEER_LUA = """-- wrk script for the Redis Agent Memory Server: requests spread over sessions s0..s99.
-- BENCH_MODE "get" reads a session's working memory; "post" writes it back with two new
-- messages (AMS has no append, so a client PUTs the whole working memory).
local mode = os.getenv("BENCH_MODE") or "get"
local n = 0
local body = [==[%s]==]

request = function()
  n = n + 1
  local path = "/v1/working-memory/s" .. (n %% 100)
  if mode == "post" then
    return wrk.format("PUT", path, {["Content-Type"] = "application/json"}, body)
  end
  return wrk.format("GET", path)
end

done = function(summary, latency, requests)
  io.write(string.format("BENCH mode=%%s requests=%%d rps=%%.1f p50_ms=%%.2f p99_ms=%%.2f errors=%%d\\n",
    mode, summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.errors.status))
end
"""


def seed_messages(session: int) -> list[dict[str, str]]:
    """seed_project's 12 messages, with the id and timestamp AMS keeps (and asks clients for)."""
    return [
        {
            "role": "Human" if i % 2 == 0 else "AI",
            "content": f"message {i} of session {session}: " + "lorem ipsum " * 8,
            "id": f"s{session}-m{i}",
            "created_at": f"2026-01-01T10:00:{i:02d}Z",
        }
        for i in range(12)
    ]


def peer_write_body() -> str:
    """What a client PUTs to add the two new messages: everything it read, plus them."""
    added = [
        {**message, "id": f"new-{i}", "created_at": f"2026-01-01T10:01:{i:02d}Z"}
        for i, message in enumerate(NEW_MESSAGES)
    ]
    return json.dumps({"messages": seed_messages(0) + added, "context": CONTEXT})


def find_python312(given: str | None) -> str | None:
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    candidates = (
        [given] if given else [shutil.which("python3.12"), *sorted(pyenv.glob("3.12*/bin/python3.12"))]
    )
    for candidate in filter(None, candidates):
        # A pyenv shim is on PATH whether or not it can run 3.12 here: ask the interpreter.
        probe = subprocess.run(
            [str(candidate), "-c", "import sys; print(sys.version_info[:2] == (3, 12))"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.stdout.strip() == "True":
            return str(candidate)
    return None


def install_peer(python312: str) -> Path:
    """The peer's virtualenv's python, made on the first run (or when PEER_PACKAGES change)."""
    python = PEER_VENV / "bin" / "python"
    marker = PEER_VENV / "recollect-packages.json"
    wanted = json.dumps(PEER_PACKAGES)
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    print(f"# installing the peer into {PEER_VENV} (first run only)", file=sys.stderr, flush=True)
    started = time.monotonic()
    # A venv left half-made by an interrupted run is made again, not patched.
    shutil.rmtree(PEER_VENV, ignore_errors=True)
    PEER_VENV.parent.mkdir(parents=True, exist_ok=True)
    steps = [[python312, "-m", "venv", str(PEER_VENV)]]
    steps += [[str(python), "-m", "pip", "install", "-q", *group] for group in PEER_PACKAGES]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.stderr.write(done.stdout + done.stderr)
            raise RuntimeError(f"installing the peer failed: {' '.join(step)}")
    marker.write_text(wanted)
    print(f"# peer installed in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    return python


def peer_versions(python: Path) -> str:
    names = ["agent-memory-server", "uvicorn", "fastapi", "pydantic", "redis"]
    code = "import sys, importlib.metadata as m; print(' '.join(f'{n} {m.version(n)}' for n in sys.argv[1:]))"
    return subprocess.run(
        [str(python), "-c", code, *names], capture_output=True, text=True, check=True
    ).stdout.strip()


def start_peer(python: Path, redis_url: str) -> Proc:
    port = free_port()
    # cwd outside the repository: AMS reads a .env file from its working directory.
    peer = Proc(
        [str(python), "-c", PEER_LAUNCHER, str(port), str(PEER_WORKERS)],
        {**PEER_ENV, "REDIS_URL": redis_url},
        PEER_VENV.parent,
        port,
    )
    # The port answers once the first worker is up; measuring before the second one is
    # would give the peer one worker for a while.
    deadline = time.monotonic() + 120
    while peer.log.read_text(errors="replace").count("Application startup complete") < PEER_WORKERS:
        if time.monotonic() > deadline or peer.process.poll() is not None:
            peer.stop()
            raise RuntimeError(f"the peer did not start; its log: {peer.log}")
        time.sleep(0.2)
    return peer


def seed_peer(base: str) -> None:
    for s in range(100):
        http(base, "PUT", f"/v1/working-memory/s{s}", body={"messages": seed_messages(s), "context": CONTEXT})


@contextlib.contextmanager
def wrk_script(path: Path) -> Iterator[None]:
    """bench.run's wrk helper runs the script named by its LUA; point it at the peer's."""
    shipped = run.LUA
    run.LUA = path
    try:
        yield
    finally:
        run.LUA = shipped


def with_redis_cpu(redis_pid: int, measure: Callable[[], dict[str, float]]) -> dict[str, float]:
    """The Redis server's CPU per request too: the two keep different shapes of data there
    (AMS a RedisJSON document that RediSearch re-indexes on every write, Recollect lists and
    hashes under Lua scripts), and on a 2-core machine Redis's CPU is the apps' CPU."""
    before = cpu_seconds(redis_pid)
    result = measure()
    result["redis_cpu_ms"] = (cpu_seconds(redis_pid) - before) * 1000 / max(1.0, result["requests"])
    return result


def face_off(
    recollect: Callable[[], dict[str, float]], peer: Callable[[], dict[str, float]], rounds: int
) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
    results = alternate([("recollect", recollect), ("peer", peer)], rounds)
    return results["recollect"], results["peer"]


def ratio_line(
    label: str, ours: list[dict[str, float]], theirs: list[dict[str, float]], field: str, unit: str
) -> str:
    a, b = median(ours, field), median(theirs, field)
    value = a / b if b else float("inf")
    if field == "rps":
        verdict = f"(goal >= {GOAL_THROUGHPUT:g}x) {'met' if value >= GOAL_THROUGHPUT else 'MISSED'}"
        rounds = f"; rounds {[round(r['rps']) for r in ours]} vs {[round(r['rps']) for r in theirs]}"
        shown = f"Recollect {a:.0f} {unit} / AMS {b:.0f} {unit}"
    else:
        verdict, rounds = "(lower is better)", ""
        shown = f"Recollect {a:.2f} {unit} / AMS {b:.2f} {unit}"
    return f"{label}: {shown} => {value:.2f}x {verdict}{rounds}"


def error_line(label: str, ours: list[dict[str, float]], theirs: list[dict[str, float]]) -> str | None:
    mine, peers = sum(r["errors"] for r in ours), sum(r["errors"] for r in theirs)
    if mine or peers:
        return f"{label}: non-2xx answers Recollect {mine:.0f}, AMS {peers:.0f}: these figures are not valid"
    return None


def stop_strays() -> None:
    """End the processes this run started that no handle is left for: bench.run's Proc
    loses its process when the server does not open its port in time."""
    children: list[int] = []
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError):
            children += [int(pid) for pid in (task / "children").read_text().split()]
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    for pid in children:
        while True:
            try:
                if os.waitpid(pid, os.WNOHANG)[0]:
                    break
            except ChildProcessError:
                break
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                break
            time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Recollect vs the Redis Agent Memory Server")
    parser.add_argument(
        "--quick", action="store_true", help="short rounds (3 s): a smoke run, not a measurement"
    )
    parser.add_argument("--rounds", type=int, help="alternating rounds per figure (default 3)")
    parser.add_argument("--seconds", type=int, help="seconds per wrk run (default 10)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--peer-python", help="a Python 3.12 for the peer's virtualenv (found if not given)")
    args = parser.parse_args(argv)
    args.rounds = args.rounds or 3
    args.seconds = args.seconds or (3 if args.quick else 10)

    if shutil.which("wrk") is None:
        print("wrk is missing (apt-get install wrk)", file=sys.stderr)
        return 1
    python312 = find_python312(args.peer_python)
    if python312 is None:
        print("no Python 3.12 found for the peer: pass --peer-python", file=sys.stderr)
        return 1
    stack = redis_stack_server()
    if stack is None:
        print("no Redis Stack server: scripts/redis-stack.sh could not provision one", file=sys.stderr)
        return 1
    try:
        peer_python = install_peer(python312)
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 1

    # The wrapper loads RediSearch; AMS stores working memory as RedisJSON documents too.
    rejson = Path(stack).parent / "lib" / "rejson.so"
    redis_server = RedisServer(
        Path(tempfile.mkdtemp(prefix="recollect-peers-")), "--loadmodule", str(rejson), binary=stack
    )
    scratch = Path(tempfile.mkdtemp(prefix="recollect-peers-lua-"))
    peer_lua = scratch / "ams_memory.lua"
    peer_lua.write_text(PEER_LUA % peer_write_body())
    fake = FakeLLM()
    # A SIGTERM (a harness's timeout) would end Python without running `finally`, leaving
    # four servers running; as an exception it stops them like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    procs: list[Proc] = []
    logs: list[Path] = []
    failed = True
    try:
        redis_server.start()
        fake.start()
        base_url = f"redis://127.0.0.1:{redis_server.port}"
        peer = start_peer(peer_python, f"{base_url}/0")
        procs.append(peer)
        logs.append(peer.log)
        seed_peer(peer.base)
        # A window larger than the run keeps folds out, as bench/run.py's append path does:
        # AMS summarizes only past 70 % of the model's context window, never at these sizes.
        recollect = gunicorn_project(
            f"{base_url}/0", fake.base_url, RECOLLECT_WINDOW_SIZE="1000", **CONFIGS["shipped"]
        )
        procs.append(recollect)
        logs.append(recollect.log)
        key = seed_project(recollect.base)

        print(
            f"# machine: {os.cpu_count()} cores; wrk -c{args.connections} and -c1, {args.seconds} s per run, "
            f"{args.rounds} alternating rounds; Recollect: gunicorn 2 gthread workers x 4 threads, shipped "
            f"config (auth, rate limits, INFO request lines), window 1000;\n"
            f"# AMS: {peer_versions(peer_python)}; {PEER_WORKERS} uvicorn workers, auth off, "
            "long-term memory off; both on one Redis Stack server, db 0"
        )

        redis_pid = redis_server.process.pid

        def ours(mode: str, connections: int, proc: Proc = recollect, api_key: str = key) -> Callable:
            return lambda: with_redis_cpu(
                redis_pid, lambda: measured(proc, api_key, mode, args.seconds, connections)
            )

        def theirs(mode: str, connections: int) -> Callable:
            def once() -> dict[str, float]:
                with wrk_script(peer_lua):
                    return measured(peer, "", mode, args.seconds, connections)

            return lambda: with_redis_cpu(redis_pid, once)

        problems = []
        # Reads first, while every session of both holds the 12 seeded messages.
        for mode, name in (("get", "read (GET)"), ("post", "write (Recollect POST 2 messages, AMS PUT 14)")):
            print(f"\n## {name}")
            mine, peers = face_off(ours(mode, args.connections), theirs(mode, args.connections), args.rounds)
            label = f"{mode.upper()} -c{args.connections}"
            print(ratio_line(f"{label} throughput", mine, peers, "rps", "rps"))
            print(ratio_line(f"{label} app CPU per request", mine, peers, "cpu_ms", "ms"))
            print(ratio_line(f"{label} Redis CPU per request", mine, peers, "redis_cpu_ms", "ms"))
            problems.append(error_line(label, mine, peers))
            mine, peers = face_off(ours(mode, 1), theirs(mode, 1), args.rounds)
            label = f"{mode.upper()} -c1"
            print(ratio_line(f"{label} p50", mine, peers, "p50_ms", "ms"))
            print(ratio_line(f"{label} p99", mine, peers, "p99_ms", "ms"))
            problems.append(error_line(label, mine, peers))
        recollect.stop()
        procs.remove(recollect)

        # The shipped default window (12): a fold every few appends per session, in the same
        # workers (the fake LLM answers at once). Database 1: the tenant is made anew.
        print("\n## write at the shipped default window (Recollect folds in its workers)")
        folding = gunicorn_project(f"{base_url}/1", fake.base_url, **CONFIGS["shipped"])
        procs.append(folding)
        logs.append(folding.log)
        folding_key = seed_project(folding.base)
        calls = fake.chat_calls
        mine, peers = face_off(
            ours("post", args.connections, folding, folding_key),
            theirs("post", args.connections),
            args.rounds,
        )
        label = f"POST -c{args.connections} at window 12"
        print(
            ratio_line(f"{label} throughput", mine, peers, "rps", "rps")
            + f"; {fake.chat_calls - calls} LLM calls"
        )
        print(ratio_line(f"{label} app CPU per request", mine, peers, "cpu_ms", "ms"))
        print(ratio_line(f"{label} Redis CPU per request", mine, peers, "redis_cpu_ms", "ms"))
        problems.append(error_line(label, mine, peers))
        for problem in filter(None, problems):
            print(f"! {problem}")
        failed = False
    finally:
        for proc in procs:
            proc.stop()
        fake.stop()
        redis_server.stop()
        stop_strays()
        shutil.rmtree(redis_server.workdir, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)
        for log in logs:
            if failed:
                print(f"# server log kept: {log}", file=sys.stderr)
            else:
                log.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
