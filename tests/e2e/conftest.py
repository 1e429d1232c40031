"""Fixtures starting real gunicorn and nginx processes (see servers.py); each is stopped
at the end of the test that started it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.servers import Gunicorn, Nginx


@pytest.fixture
def start_gunicorn(redis_url: str, tmp_path: Path) -> Iterator[Callable[..., Gunicorn]]:
    started: list[Gunicorn] = []

    def start(**env: str) -> Gunicorn:
        server = Gunicorn(tmp_path / f"gunicorn{len(started)}", redis_url, **env)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def gunicorn(start_gunicorn: Callable[..., Gunicorn]) -> Gunicorn:
    return start_gunicorn()


@pytest.fixture
def start_nginx(tmp_path: Path) -> Iterator[Callable[..., Nginx]]:
    started: list[Nginx] = []

    def start(app: Gunicorn, **placeholders: str) -> Nginx:
        server = Nginx(tmp_path / f"nginx{len(started)}", app.upstream, **placeholders)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()
