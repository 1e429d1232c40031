"""``flask --app wsgi tenants|keys ...``: the admin operations from a shell."""

from __future__ import annotations

import json


def run(app, *args: str, input: str | None = None):  # noqa: A002 - click's name
    return app.test_cli_runner().invoke(args=list(args), input=input)


def test_tenant_and_key_lifecycle_from_the_cli(app):
    created = run(app, "tenants", "create", "acme", "--name", "Acme", "--window-size", "20")
    assert created.exit_code == 0, created.output
    body = json.loads(created.output)
    assert body["tenant"]["policy"] == {"window_size": 20}
    key = body["api_key"]
    client = app.test_client()
    assert client.get("/keys/current", headers={"Authorization": f"Bearer {key}"}).json["tenant_id"] == "acme"

    listed = json.loads(run(app, "tenants", "list").output)
    assert [t["id"] for t in listed] == ["acme"]
    updated = json.loads(
        run(app, "tenants", "update", "acme", "--summary-model", "llama3", "--reset", "window_size").output
    )
    assert updated["policy"] == {"summary_model": "llama3"}

    second = json.loads(run(app, "keys", "create", "acme", "--label", "ops").output)
    keys = json.loads(run(app, "keys", "list", "acme").output)
    assert {k["key_id"] for k in keys} == {body["key_id"], second["key_id"]}
    assert second["api_key"] not in run(app, "keys", "list", "acme").output
    assert run(app, "keys", "revoke", "acme", body["key_id"]).exit_code == 0
    assert [k["key_id"] for k in json.loads(run(app, "keys", "list", "acme").output)] == [second["key_id"]]

    assert run(app, "tenants", "delete", "acme", "--yes").exit_code == 0
    assert json.loads(run(app, "tenants", "list").output) == []


def test_cli_errors_are_one_line_and_non_zero(app):
    run(app, "tenants", "create", "acme")
    duplicate = run(app, "tenants", "create", "acme")
    assert duplicate.exit_code != 0 and "tenant_exists" in duplicate.output
    bad = run(app, "tenants", "create", "x", "--rate-limit", "lots")
    assert bad.exit_code != 0 and "rate_limit" in bad.output
    missing = run(app, "keys", "create", "nope")
    assert missing.exit_code != 0 and "tenant_not_found" in missing.output
    assert run(app, "tenants", "delete", "acme", input="n\n").exit_code != 0  # confirmation refused


def one_line_error(result) -> str:
    """A failing command exits non-zero with exactly one line of explanation."""
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


def test_every_domain_error_is_one_line(app):
    run(app, "tenants", "create", "acme")
    assert "tenant_exists" in one_line_error(run(app, "tenants", "create", "acme"))
    assert "rate_limit" in one_line_error(run(app, "tenants", "create", "x", "--rate-limit", "lots"))
    assert "invalid_field" in one_line_error(run(app, "tenants", "create", "Not A Slug"))
    assert "tenant_not_found" in one_line_error(run(app, "tenants", "update", "nope", "--window-size", "5"))
    assert "window_size" in one_line_error(run(app, "tenants", "update", "acme", "--window-size", "1"))
    assert "tenant_not_found" in one_line_error(run(app, "tenants", "delete", "nope", "--yes"))
    assert "tenant_not_found" in one_line_error(run(app, "keys", "list", "nope"))
    assert "key_not_found" in one_line_error(run(app, "keys", "revoke", "acme", "unknownkeyid"))
    # Nothing was half-created by the failures.
    assert [t["id"] for t in json.loads(run(app, "tenants", "list").output)] == ["acme"]


def test_cli_revocation_and_deletion_take_effect_on_the_api(app, redis_client):
    client = app.test_client()
    first = json.loads(run(app, "tenants", "create", "acme").output)
    second = json.loads(run(app, "keys", "create", "acme").output)
    headers = {"Authorization": f"Bearer {second['api_key']}"}
    body = {"messages": [{"role": "Human", "content": "x"}]}
    assert client.post("/sessions/s1/memory", json=body, headers=headers).status_code == 200
    assert run(app, "keys", "revoke", "acme", second["key_id"]).exit_code == 0
    assert client.get("/sessions", headers=headers).status_code == 401
    first_headers = {"Authorization": f"Bearer {first['api_key']}"}
    assert client.get("/sessions", headers=first_headers).json == ["s1"]
    assert run(app, "tenants", "delete", "acme", "--yes").exit_code == 0
    assert client.get("/sessions", headers=first_headers).status_code == 401
    assert [k for k in redis_client.scan_iter() if b"acme" in k] == []


def test_the_cli_refuses_to_run_on_the_embedded_store(make_app):
    app = make_app(redis_url=None)
    for command in (("tenants", "list"), ("keys", "create", "acme"), ("tenants", "create", "acme")):
        result = run(app, *command)
        assert result.exit_code != 0
        assert "REDIS_URL is not set" in result.output


def test_the_recollect_command_is_the_same_cli_without_flask(redis_url, tmp_path):
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    command = shutil.which("recollect", path=str(Path(sys.executable).parent))
    assert command, "the recollect console script is installed with the project (make install)"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "REDIS_URL": redis_url}
    created = subprocess.run(
        [command, "tenants", "create", "cli-script"], env=env, capture_output=True, text=True
    )
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["api_key"].startswith("rk_")
    listed = subprocess.run([command, "tenants", "list"], env=env, capture_output=True, text=True)
    assert "cli-script" in listed.stdout
    refused = subprocess.run(
        [command, "tenants", "list"], env={**env, "REDIS_URL": ""}, capture_output=True, text=True
    )
    assert refused.returncode != 0 and "REDIS_URL is not set" in refused.stderr
