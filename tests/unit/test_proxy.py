"""X-Forwarded-* is trusted from exactly RECOLLECT_PROXY_COUNT proxies, and no further."""

from __future__ import annotations

import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest
from flask import Flask, jsonify, request

from app import create_app, proxy
from config import ConfigError, load_settings

ROOT = Path(__file__).resolve().parents[2]

FORWARDED = {"X-Forwarded-For": "203.0.113.9, 198.51.100.7", "X-Forwarded-Proto": "https"}


def seen_by(count: int) -> dict:
    """What a route sees of a request from 10.0.0.2 (the proxy next to the app)."""
    app = Flask(__name__)

    @app.get("/")
    def echo():  # noqa: ANN202
        return jsonify(addr=request.remote_addr, scheme=request.scheme)

    proxy.wrap(app, count)
    client = app.test_client()
    return client.get("/", headers=FORWARDED, environ_base={"REMOTE_ADDR": "10.0.0.2"}).json


def test_by_default_no_proxy_is_trusted():
    assert seen_by(0) == {"addr": "10.0.0.2", "scheme": "http"}


def test_one_proxy_the_address_it_appended_not_what_the_client_wrote():
    # nginx appends the client's address last; 203.0.113.9 is whatever the client claimed.
    assert seen_by(1) == {"addr": "198.51.100.7", "scheme": "https"}


def test_two_proxies_one_more_hop_to_the_left():
    assert seen_by(2)["addr"] == "203.0.113.9"


def test_gunicorn_hooks_still_find_the_apps_resources_behind_proxyfix():
    # config/gunicorn.conf.py starts each worker's fold pool from what gunicorn loaded.
    hooks = runpy.run_path(str(ROOT / "config" / "gunicorn.conf.py"))
    app = create_app(load_settings(proxy_count=1))
    try:
        assert type(app.wsgi_app).__name__ == "ProxyFix"
        assert hooks["_resources"](SimpleNamespace(wsgi=app)) is app.extensions["recollect"]
    finally:
        app.extensions["recollect"].shutdown(wait=True)


def test_the_count_is_a_setting(monkeypatch):
    assert load_settings().proxy_count == 0
    monkeypatch.setenv("RECOLLECT_PROXY_COUNT", "1")
    assert load_settings().proxy_count == 1
    monkeypatch.setenv("RECOLLECT_PROXY_COUNT", "9")
    with pytest.raises(ConfigError, match="RECOLLECT_PROXY_COUNT"):
        load_settings()
