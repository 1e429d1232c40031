"""Real processes for the end-to-end tests, each on a free loopback port: the app under
gunicorn with ``config/gunicorn.conf.py``, and nginx with the project's template rendered
by ``nginx/render.py`` — the same files a deployment uses.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import pytest
import redis

from tests.conftest import ADMIN_TOKEN, free_port

ROOT = Path(__file__).resolve().parents[2]


class Reply(NamedTuple):
    status: int
    json: Any  # the parsed body when it is JSON, else its text
    headers: http.client.HTTPMessage


def call(
    base: str,
    method: str,
    path: str,
    key: str | None = None,
    body: dict | None = None,
    *,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
    source: str = "127.0.0.1",
    timeout: float = 10,
) -> Reply:
    """One request on a new connection. ``source`` is the client's own address: every
    127.x.y.z is loopback on Linux, so tests can play several clients."""
    url = urlsplit(base)
    connection = http.client.HTTPConnection(
        url.hostname, url.port, timeout=timeout, source_address=(source, 0)
    )
    sent = dict(headers or {})
    if key:
        sent["Authorization"] = f"Bearer {key}"
    if body is not None:
        data = json.dumps(body).encode()
    if data is not None:
        sent.setdefault("Content-Type", "application/json")
    try:
        connection.request(method, path, body=data, headers=sent)
        response = connection.getresponse()
        raw = response.read()
    finally:
        connection.close()
    if not raw:
        return Reply(response.status, None, response.headers)
    is_json = (response.headers.get("Content-Type") or "").startswith("application/json")
    return Reply(response.status, json.loads(raw) if is_json else raw.decode(), response.headers)


def _tail(path: Path, lines: int = 30) -> str:
    if not path.exists():
        return "(no file)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def log_lines(path: Path) -> list[str]:
    """A log's lines; for JSON lines (the app's log format, which gunicorn's access log
    shares) the ``message`` field, so tests read the same text in either format."""
    if not path.exists():
        return []
    lines = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):  # not JSON after all: keep it as is
                line = str(json.loads(line).get("message", line))
        lines.append(line)
    return lines


def _wait_for_line(path: Path, needle: str, timeout: float, what: str) -> str:
    """Log lines are written after the response is sent: poll for one."""
    deadline = time.monotonic() + timeout
    while True:
        for line in log_lines(path):
            if needle in line:
                return line
        if time.monotonic() > deadline:
            raise AssertionError(f"no line with {needle!r} in {what}:\n{_tail(path)}")
        time.sleep(0.05)


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):  # exited meanwhile
            # The parent pid is the second field after the command, which may hold spaces.
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def listening_sockets(pid: int) -> dict[str, int]:
    """Listening TCP sockets (inode → port) of the process ``pid`` and its children: gunicorn's
    workers each listen on a socket of their own (``reuse_port``), nginx's master listens."""
    inodes = set()
    for process in (pid, *children(pid)):
        try:
            fds = list(Path(f"/proc/{process}/fd").iterdir())
        except OSError:  # it has exited
            continue
        for fd in fds:
            with contextlib.suppress(OSError):  # closed meanwhile
                link = os.readlink(fd)
                if link.startswith("socket:["):
                    inodes.add(link[len("socket:[") : -1])
    sockets = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                sockets[fields[9]] = int(fields[1].rsplit(":", 1)[1], 16)
    return sockets


def listening_ports(pid: int) -> set[int]:
    """TCP ports the process ``pid`` (or one of its children) listens on."""
    return set(listening_sockets(pid).values())


def start_listening(
    launch: Callable[[int], subprocess.Popen[bytes]], what: str, log: Path, timeout: float = 20
) -> tuple[subprocess.Popen[bytes], int]:
    """Start a server on a free port and wait until *that process* (or its child) listens on it.

    Other test runs share this machine: a port free a moment ago can be taken before the
    server binds it, and "something answers on the port" would then be someone else. So the
    check is that the port is among the process's own listening sockets; if the process
    gives up instead, it is started again on another port.
    """
    for _ in range(3):
        port = free_port()
        process = launch(port)
        deadline = time.monotonic() + timeout
        while process.poll() is None and port not in listening_ports(process.pid):
            if time.monotonic() > deadline:
                process.kill()
                process.wait()
                pytest.fail(f"{what} is not listening after {timeout}s:\n{_tail(log)}")
            time.sleep(0.02)
        if process.poll() is None:
            return process, port
    pytest.fail(f"{what} did not start:\n{_tail(log)}")


class Gunicorn:
    """``gunicorn -c config/gunicorn.conf.py wsgi:app``, 2 gthread workers, real Redis."""

    def __init__(self, workdir: Path, redis_url: str, **env: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = 0  # chosen by start()
        self.access_log = workdir / "access.log"
        self.error_log = workdir / "error.log"
        self.env = {
            "PATH": os.environ["PATH"],
            "REDIS_URL": redis_url,
            "RECOLLECT_ADMIN_TOKEN": ADMIN_TOKEN,
            "RECOLLECT_WINDOW_SIZE": "4",
            "RECOLLECT_SWEEP_INTERVAL_SECONDS": "0.1",
            "RECOLLECT_LOG_LEVEL": "WARNING",
            "GUNICORN_WORKERS": "2",
            "GUNICORN_THREADS": "4",
            "GUNICORN_ACCESSLOG": str(self.access_log),
            # Plain lines are easier to assert on; test_observability checks the JSON default.
            "RECOLLECT_LOG_FORMAT": "text",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def upstream(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Gunicorn:
        def launch(port: int) -> subprocess.Popen[bytes]:
            with self.error_log.open("wb") as errors:  # a file, not a pipe nobody drains
                return subprocess.Popen(
                    [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "wsgi:app"],
                    cwd=ROOT,
                    env={**self.env, "GUNICORN_BIND": f"127.0.0.1:{port}"},
                    stdout=subprocess.DEVNULL,
                    stderr=errors,
                )

        self.process, self.port = start_listening(launch, "gunicorn", self.error_log)
        self.wait_until_serving()
        return self

    def wait_until_serving(self, timeout: float = 60) -> None:
        """Until a worker answers: the master listens before its workers have booted, and
        on a busy machine a boot (imports, tokenizer, pools) can outlast a test's timeout."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if call(self.base, "GET", "/healthz", timeout=timeout)[0] == 200:
                    return
            except OSError:
                pass
            assert time.monotonic() < deadline, f"gunicorn did not serve:\n{_tail(self.error_log)}"
            time.sleep(0.1)

    def wait_for_workers(self, count: int = 2, timeout: float = 20) -> None:
        """Until ``count`` worker processes have answered: the master listens before its
        workers have booted, and a test about in-flight requests needs them all serving."""
        deadline = time.monotonic() + timeout
        while len(self.worker_pids()) < count:
            assert time.monotonic() < deadline, f"gunicorn workers did not boot:\n{_tail(self.error_log)}"
            for _ in range(4):
                call(self.base, "GET", "/healthz")
            time.sleep(0.05)

    def worker_pids(self) -> set[str]:
        return {line.rsplit("pid=", 1)[1].split()[0] for line in self.access_lines() if "pid=" in line}

    def access_lines(self) -> list[str]:
        return log_lines(self.access_log)

    def wait_for_access_line(self, needle: str, timeout: float = 5) -> str:
        return _wait_for_line(self.access_log, needle, timeout, "gunicorn's access log")

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float = 30) -> int:
        """The exit status, once the process has ended by itself (e.g. after a signal)."""
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM (a graceful stop) and wait; the exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        finally:
            self.process = None


def load_renderer() -> ModuleType:
    """``nginx/render.py`` is a script shipped next to the template, not a package module."""
    spec = importlib.util.spec_from_file_location("recollect_nginx_render", ROOT / "nginx" / "render.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def nginx_binary() -> str:
    # Debian installs it in /usr/sbin, which is not on a normal user's PATH.
    binary = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if binary is None:
        pytest.fail("nginx is not installed; run `make test`, which installs it (apt-get install nginx)")
    return binary


class Nginx:
    """A private nginx serving ``nginx/recollect.conf.template`` in front of ``upstream``.

    The template is an http-context file (what the nginx image puts in conf.d/); the main
    file written here plays the image's nginx.conf, with every path inside ``workdir``.
    """

    def __init__(self, workdir: Path, upstream: str, **placeholders: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.binary = nginx_binary()
        self.workdir = workdir
        self.port = 0  # chosen by start()
        self.access_log = workdir / "access.log"
        self.error_log = workdir / "error.log"
        self.placeholders = {"SERVER_NAME": "127.0.0.1 localhost", "UPSTREAM": upstream, **placeholders}
        self.site = workdir / "recollect.conf"
        self.main = workdir / "nginx.conf"
        temp = {name: workdir / name for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")}
        # Run as root (as here), nginx's workers would switch to "nobody" and could not
        # write request bodies into pytest's private temp directories.
        user = "user root;\n" if os.geteuid() == 0 else ""
        self.main.write_text(
            f"{user}worker_processes 2;\n"
            "events { worker_connections 256; }\n"
            "http {\n"
            + "".join(f"    {name}_temp_path {path};\n" for name, path in temp.items())
            + f"    include {self.site};\n"
            "}\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Nginx:
        directives = f"daemon off; pid {self.workdir / 'nginx.pid'}; error_log {self.error_log} info;"
        command = [self.binary, "-p", str(self.workdir), "-c", str(self.main), "-g", directives]
        renderer = load_renderer()

        def launch(port: int) -> subprocess.Popen[bytes]:
            values = renderer.values_from({}, {"LISTEN_PORT": str(port), **self.placeholders})
            self.site.write_text(renderer.render(renderer.TEMPLATE.read_text(), values))
            check = subprocess.run([*command, "-t"], capture_output=True, text=True)
            if check.returncode != 0:
                pytest.fail(f"nginx rejects the rendered template:\n{check.stderr}")
            # The template logs to /dev/stdout (the container's log); here that is a file.
            with self.access_log.open("wb") as stdout, (self.workdir / "stderr.log").open("wb") as stderr:
                return subprocess.Popen(command, stdout=stdout, stderr=stderr)

        self.process, self.port = start_listening(launch, "nginx", self.error_log)
        return self

    def access_lines(self) -> list[str]:
        return log_lines(self.access_log)

    def wait_for_access_line(self, needle: str, timeout: float = 5) -> str:
        return _wait_for_line(self.access_log, needle, timeout, "nginx's access log")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


def pause_redis(server: Any, milliseconds: int) -> None:
    """Hold every Redis command for a while (``CLIENT PAUSE ... ALL``, on each node of a
    cluster): requests then wait inside the app, reliably in flight."""
    for node in getattr(server, "nodes", [server]):
        client = redis.Redis(port=node.port)
        client.client_pause(milliseconds, all=True)
        client.close()
