"""The Docker image, built from the repository's Dockerfile and run with its
docker-compose.yml: nginx → app → Redis as deployed, driven through nginx.

Where Docker Hub is out of reach, the base images are stand-ins of the same tags made from
Debian's packages (scripts/docker-standins.sh, cached under ~/.cache/recollect/). The
compose file runs as it is, but for what a test machine needs (docs/deploy.md, "The image
and how it is tested"): host networking on free loopback ports, so nothing leaves loopback
and nothing collides with a service of the machine; the project name from the command
line; and the image tagged recollect:e2e.

Needs a Docker engine: an engine that answers is used as it is; otherwise, as root with
Debian's docker.io installed, the tests start dockerd for this module and stop it after.
Without either the module is skipped and says why.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests.conftest import ADMIN, ADMIN_TOKEN, free_port
from tests.e2e.servers import ROOT, call

pytestmark = pytest.mark.slow

DOCKER = shutil.which("docker")
if DOCKER is None:
    pytest.skip(
        "the docker command is not installed (Debian package docker.io; `make test` installs it)",
        allow_module_level=True,
    )


def _compose_command() -> list[str] | None:
    """`docker compose` (v2) when the plugin is there, else Debian's docker-compose (v1)."""
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        if subprocess.run([DOCKER, "compose", "version"], capture_output=True, timeout=30).returncode == 0:
            return [DOCKER, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


COMPOSE = _compose_command()
if COMPOSE is None:
    pytest.skip(
        "neither `docker compose` nor docker-compose is installed (Debian package docker-compose; "
        "`make test` installs it)",
        allow_module_level=True,
    )

IMAGE = "recollect:e2e"
BUILD_TIMEOUT = 900  # a cold build: debootstrap three stand-ins, pip install the dependencies
MESSAGE = {"messages": [{"role": "Human", "content": "written during docker stop"}]}


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done


def inspect(container: str) -> dict:
    return json.loads(docker("inspect", container).stdout)[0]


def _engine_error() -> str | None:
    """None when a Docker engine answers, else why not."""
    try:
        done = subprocess.run(
            [DOCKER, "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=20
        )
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer within 20 s"
    if done.returncode == 0 and done.stdout.strip():
        return None
    return (
        (done.stderr or done.stdout).strip().splitlines()[-1] if (done.stderr or done.stdout).strip() else "?"
    )


@pytest.fixture(scope="module")
def docker_lock() -> Iterator[None]:
    """One run of this module at a time on the machine: another (a second checkout's
    `make test`) would otherwise stop the dockerd this one uses, or build the same images."""
    path = Path.home() / ".cache" / "recollect" / "docker-test.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + BUILD_TIMEOUT
    with path.open("w") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.skip(f"another run has held {path} for {BUILD_TIMEOUT} s")
                time.sleep(1)
        yield


@pytest.fixture(scope="module")
def docker_engine(docker_lock: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A Docker engine that answers: the machine's, or a dockerd started here (and stopped
    at the end of the module). Started here it runs without iptables and without a default
    bridge, which host networking does not need, so it works where netfilter does not."""
    reason = _engine_error()
    if reason is None:
        yield
        return
    dockerd = shutil.which("dockerd") or shutil.which("dockerd", path="/usr/sbin:/sbin")
    if dockerd is None:
        pytest.skip(f"no Docker engine answers ({reason}) and dockerd is not installed (Debian docker.io)")
    if os.geteuid() != 0:
        pytest.skip(f"no Docker engine answers ({reason}), and starting dockerd needs root")
    log = tmp_path_factory.mktemp("dockerd") / "dockerd.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [dockerd, "--iptables=false", "--ip6tables=false", "--bridge=none"],
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while (reason := _engine_error()) is not None:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            pytest.skip(f"dockerd could not be started ({reason}); its log ends:\n{tail}")
        time.sleep(0.5)
    try:
        yield
    finally:
        process.terminate()  # dockerd stops its containers and its containerd
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def base_images(docker_engine: None) -> list[str]:
    """The images the Dockerfile and compose file name: real ones when present, otherwise
    Debian stand-ins of the same tags (made once, then cached)."""
    done = subprocess.run(
        [str(ROOT / "scripts" / "docker-standins.sh")],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        env={**os.environ, "DOCKER": DOCKER},
    )
    assert done.returncode == 0, f"scripts/docker-standins.sh failed:\n{done.stderr[-3000:]}"
    return done.stdout.split()


def compose_command_of(service_block: str) -> list[str]:
    """The `command:` list of a service block of docker-compose.yml (YAML kept simple)."""
    block = re.search(r"^    command:\n((?:      (?:- .*|#.*)\n)+)", service_block, re.M)
    assert block, "the redis service has no command list"
    items = [line.strip()[2:] for line in block.group(1).splitlines() if line.strip().startswith("- ")]
    return [item[1:-1] if item[:1] == item[-1:] == '"' else item for item in items]


def compose_files_for(workdir: Path, ports: dict[str, int]) -> list[str]:
    """The repository's compose file, as a test machine runs it: the `-f` arguments.

    Two lines go (the `name:`, which docker-compose v1 does not know, given by `-p`
    instead; nginx's `ports:`, which means nothing with host networking and which v1
    refuses with it), and an override puts every service on the host's network, on free
    loopback ports.
    """
    text = (ROOT / "docker-compose.yml").read_text()
    base = re.sub(r"^name: .*\n", "", text, flags=re.M)
    base, dropped = re.subn(r"^    ports:\n(?:      - .*\n)+", "", base, flags=re.M)
    assert dropped == 1, "docker-compose.yml: expected one ports: list (nginx's)"
    redis_block = re.search(r"^  redis:\n(.*?)(?=^  \S)", text, re.M | re.S).group(1)
    host = {"network_mode": "host"}
    override = {
        "services": {
            "redis": {
                **host,
                "command": [
                    *compose_command_of(redis_block),
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(ports["redis"]),
                ],
                "healthcheck": {"test": ["CMD", "redis-cli", "-p", str(ports["redis"]), "ping"]},
            },
            "app": {
                **host,
                "image": IMAGE,
                "build": {"context": str(ROOT), "network": "host"},
                "environment": {
                    "REDIS_URL": f"redis://127.0.0.1:{ports['redis']}/0",
                    "GUNICORN_HOST": "127.0.0.1",
                    "PORT": str(ports["app"]),
                    # Lean on a shared 2-core machine; the graceful stop is the same.
                    "GUNICORN_WORKERS": "2",
                    "GUNICORN_THREADS": "4",
                },
            },
            "nginx": {
                **host,
                "environment": {
                    "LISTEN_PORT": f"127.0.0.1:{ports['nginx']}",
                    "UPSTREAM": f"127.0.0.1:{ports['app']}",
                },
            },
        }
    }
    (workdir / "docker-compose.yml").write_text(base)
    (workdir / "override.json").write_text(json.dumps(override, indent=2))  # JSON is YAML
    return ["-f", str(workdir / "docker-compose.yml"), "-f", str(workdir / "override.json")]


@dataclass
class Stack:
    project: str
    files: list[str]
    ports: dict[str, int]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.ports['nginx']}"

    def compose(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        command = [*COMPOSE, "--project-directory", str(ROOT), "-p", self.project, *self.files, *args]
        env = {**os.environ, "RECOLLECT_ADMIN_TOKEN": ADMIN_TOKEN, "DOCKER_BUILDKIT": "0"}
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)

    def container(self, service: str) -> str:
        return self.compose("ps", "-q", service).stdout.strip()

    def logs(self) -> str:
        return self.compose("logs", "--no-color", "--tail", "40").stdout[-6000:]

    def wait_healthy(self, services: tuple[str, ...], timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        for service in services:
            while True:
                state = inspect(self.container(service))["State"]
                if state.get("Health", {}).get("Status") == "healthy":
                    break
                assert state["Running"], f"{service} exited ({state['ExitCode']}):\n{self.logs()}"
                assert time.monotonic() < deadline, f"{service} is not healthy:\n{state}\n{self.logs()}"
                time.sleep(0.5)


@pytest.fixture(scope="module")
def stack(base_images: list[str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("compose")
    ports = {"redis": free_port(), "app": free_port(), "nginx": free_port()}
    stack = Stack(f"recollecte2e{os.getpid()}", compose_files_for(workdir, ports), ports)
    previous = docker("image", "inspect", "-f", "{{.Id}}", IMAGE, check=False).stdout.strip()
    built = stack.compose("build", "app", timeout=BUILD_TIMEOUT)
    assert built.returncode == 0, f"the image does not build:\n{built.stdout[-4000:]}\n{built.stderr[-3000:]}"
    current = docker("image", "inspect", "-f", "{{.Id}}", IMAGE).stdout.strip()
    if previous and previous != current:  # the last run's image; the layers they share stay
        docker("image", "rm", previous, check=False)
    try:
        up = stack.compose("up", "-d", "--no-build")
        assert up.returncode == 0, f"compose up failed:\n{up.stderr[-3000:]}\n{stack.logs()}"
        stack.wait_healthy(("redis", "app", "nginx"))
        yield stack
    finally:
        stack.compose("down", "--volumes", "--remove-orphans", "--timeout", "90")


def create_tenant(stack: Stack, tenant: str) -> str:
    reply = call(stack.base, "POST", "/admin/tenants", body={"id": tenant}, headers=ADMIN)
    assert reply.status == 201, reply
    return reply.json["api_key"]


def test_the_containers_become_healthy(stack: Stack) -> None:
    """The app's health check is the image's own (HEALTHCHECK in the Dockerfile); nginx's
    goes through nginx to the app; Redis' pings it."""
    app = inspect(stack.container("app"))
    assert "/healthz" in " ".join(app["Config"]["Healthcheck"]["Test"])
    for service in ("redis", "app", "nginx"):
        assert inspect(stack.container(service))["State"]["Health"]["Status"] == "healthy", service


def test_the_app_runs_as_a_non_root_user_on_a_read_only_root(stack: Stack) -> None:
    container = stack.container("app")
    details = inspect(container)
    assert details["Config"]["User"] == "recollect"
    assert details["HostConfig"]["ReadonlyRootfs"] is True
    # Every process in the container (gunicorn's master and workers, and this probe).
    probe = (
        "import os; print(sorted({os.stat(f'/proc/{p}').st_uid for p in os.listdir('/proc') if p.isdigit()}))"
    )
    uids = json.loads(docker("exec", container, "python", "-c", probe).stdout)
    assert uids and 0 not in uids, uids
    assert "gunicorn" in docker("exec", container, "cat", "/proc/1/cmdline").stdout
    # Nothing on the root filesystem is writable, not even what the user owns; /tmp is a tmpfs.
    for path in ("/srv/written", "/opt/venv/written", "/home/written"):
        write = docker("exec", container, "python", "-c", f"open({path!r}, 'w')", check=False)
        assert write.returncode != 0 and "Read-only file system" in write.stderr, (path, write.stderr)
    docker("exec", container, "python", "-c", "open('/tmp/written', 'w').write('ok')")


def test_the_api_through_nginx(stack: Stack) -> None:
    assert call(stack.base, "GET", "/readyz").status == 200  # the app reaches Redis
    key = create_tenant(stack, "docker-api")
    body = {
        "messages": [{"role": "Human", "content": "Ship on the 14th?"}, {"role": "AI", "content": "Yes."}]
    }
    posted = call(stack.base, "POST", "/sessions/chat-42/memory", key, body)
    assert (posted.status, posted.json) == (200, {"status": "Ok", "message_ids": [1, 2]})
    assert posted.headers["X-Request-ID"]
    memory = call(stack.base, "GET", "/sessions/chat-42/memory", key)
    assert memory.status == 200
    assert [m["content"] for m in memory.json["messages"]] == ["Yes.", "Ship on the 14th?"]
    assert call(stack.base, "GET", "/sessions/chat-42/memory").status == 401
    # The client address the app sees is the one nginx appended: 127.0.0.1 may use /admin.
    assert call(stack.base, "GET", "/admin/tenants", headers=ADMIN).status == 200


def test_docker_stop_lets_in_flight_requests_finish(stack: Stack) -> None:
    """`docker stop` sends gunicorn SIGTERM and waits stop_grace_period (90 s): requests in
    flight get their 200, nothing acknowledged is lost, and meanwhile nginx answers new
    requests with its JSON 502 and Retry-After (docs/deploy.md, "Zero-downtime deploys")."""
    key = create_tenant(stack, "docker-stop")
    container = stack.container("app")
    for _ in range(8):  # both workers have booted and served
        assert call(stack.base, "GET", "/sessions", key).status == 200

    stopped = threading.Event()
    stream: list[tuple[int, object, str | None]] = []

    def keep_asking() -> None:  # a client that goes on calling throughout
        while not stopped.is_set():
            with contextlib.suppress(OSError):
                reply = call(stack.base, "GET", "/sessions", key, timeout=30)
                stream.append((reply.status, reply.json, reply.headers.get("Retry-After")))
            time.sleep(0.05)

    client = redis.Redis(port=stack.ports["redis"])
    asker = threading.Thread(target=keep_asking, daemon=True)
    with ThreadPoolExecutor(max_workers=8) as pool:
        asker.start()
        # Hold Redis for 1.8 s (under the app's 2 s Redis timeout, as shipped): the requests
        # below reach the workers and wait there, mid-request.
        client.client_pause(1800, all=True)
        posts = [
            pool.submit(call, stack.base, "POST", f"/sessions/s{i}/memory", key, MESSAGE, timeout=60)
            for i in range(6)
        ]
        time.sleep(0.7)  # loopback: they reach the workers within milliseconds
        assert not any(f.done() for f in posts), "the requests must still be in flight"
        began = time.monotonic()
        docker("stop", "--time", "90", container, timeout=120)
        took = time.monotonic() - began
        replies = [f.result(timeout=60) for f in posts]
        time.sleep(0.5)
        stopped.set()
        asker.join(timeout=60)
    client.close()

    assert [(r.status, r.json) for r in replies] == [(200, {"status": "Ok", "message_ids": [1]})] * 6
    state = inspect(container)["State"]
    assert (state["Running"], state["ExitCode"]) == (False, 0)  # a clean exit, not SIGKILL
    assert took < 60, f"docker stop took {took:.1f}s"
    # While the app was stopping and once it was gone: 200s, then nginx's 502, nothing else.
    assert stream, "the client got no answer at all"
    assert stream[-1][0] == 502
    for status, body, retry_after in stream:
        assert status == 200 or (status, body["error"]["code"], retry_after) == (502, "bad_gateway", "1")

    # Started again, the app has every message it acknowledged.
    docker("start", container)
    stack.wait_healthy(("app",))
    for i in range(6):
        memory = call(stack.base, "GET", f"/sessions/s{i}/memory", key)
        assert memory.status == 200 and [m["content"] for m in memory.json["messages"]] == [
            MESSAGE["messages"][0]["content"]
        ], memory
