"""`make run` (devtools/serve.py): gunicorn on the embedded store, a dev key and an admin
token printed, both working — the first thing a newcomer does."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.e2e.servers import call

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def test_make_run_serves_on_gunicorn_with_a_printed_key_and_admin_token(tmp_path):
    port = free_port()
    env = {"PATH": os.environ["PATH"], "PORT": str(port), "HOME": str(tmp_path)}
    output = tmp_path / "out.txt"
    with output.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "devtools.serve"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None and time.monotonic() < deadline, output.read_text()
            try:
                if call(base, "GET", "/healthz").status == 200:
                    break
            except OSError:
                time.sleep(0.2)
        text = output.read_text()
        key = re.search(r"\b(rk_\S+)", text).group(1)
        token = re.search(r"Admin token: (\S+)", text).group(1)
        assert (
            call(
                base,
                "POST",
                "/sessions/demo/memory",
                key,
                {"messages": [{"role": "Human", "content": "hello"}]},
            ).status
            == 200
        )
        assert [m["content"] for m in call(base, "GET", "/sessions/demo/memory", key).json["messages"]] == [
            "hello"
        ]
        assert call(base, "GET", "/admin/tenants", token).json["tenants"][0]["id"] == "dev"
        assert call(base, "GET", "/docs/").status == 200
        assert "gunicorn" in text
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
