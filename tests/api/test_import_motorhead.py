"""``flask --app wsgi import-motorhead``: a MotorHead deployment, written command for command
in MotorHead's layout into a second real redis-server, copied into a tenant — order, summary,
tokens, last-write times and long-term memory kept, idempotently, with a report."""

from __future__ import annotations

import json

import pytest
import redis

from tests.api.test_search import indexed, retrieve
from tests.api.test_summarization import memory, wait_until
from tests.conftest import TenantHandle
from tests.motorhead_layout import MotorheadWriter


@pytest.fixture
def motorhead(private_redis) -> MotorheadWriter:
    client = redis.Redis.from_url(private_redis.url)
    yield MotorheadWriter(client, long_term_memory=True, window_size=6)
    client.close()


def run(app, *args: str):
    return app.test_cli_runner().invoke(args=list(args))


def migrate(app, source: str, *extra: str) -> dict:
    result = run(app, "import-motorhead", "--source", source, "--tenant", "acme", *extra)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def history(client, tenant: TenantHandle, session: str) -> list[dict]:
    response = client.get(
        f"/sessions/{session}/messages", query_string={"limit": 100}, headers=tenant.headers
    )
    assert response.status_code == 200
    return list(reversed(response.json["messages"]))


def test_a_deployment_is_copied_with_order_summary_tokens_and_times(
    app, client, tenant, motorhead, private_redis
):
    turns = [("Human", "my cat is called Miso"), ("AI", "nice"), ("Human", "she likes tuna"), ("AI", "ok")]
    motorhead.post("2024-05-01T12:00:00.000Z", turns * 2, at=1_714_564_800)  # 8 > window 6
    motorhead.compact("2024-05-01T12:00:00.000Z", "A chat about Miso the cat.", 210)
    motorhead.post("2024-05-01T12:00:00.000Z", [("Human", "what is her name?")], at=1_714_564_900)
    motorhead.post("second", [("user", "hello: world"), ("assistant", "hi")], at=1_714_564_850)

    report = migrate(app, private_redis.url)
    assert report["copied"]["sessions"] == 2 and report["skipped"] == {}
    assert client.get("/sessions", headers=tenant.headers).json == ["second", "2024-05-01T12:00:00.000Z"]

    body = memory(client, tenant, "2024-05-01T12:00:00.000Z")
    assert body["context"] == "A chat about Miso the cat." and body["tokens"] == 210
    window = list(reversed(body["messages"]))
    assert [(m["role"], m["content"]) for m in window] == [*(turns * 2)[4:], ("Human", "what is her name?")]
    assert window[0]["created_at"] == "2024-05-01T12:01:40.000Z"
    archived = history(client, tenant, "2024-05-01T12:00:00.000Z")[:4]
    assert sorted((m["role"], m["content"]) for m in archived) == sorted(turns)
    assert [(m["role"], m["content"]) for m in history(client, tenant, "second")] == [
        ("user", "hello: world"),
        ("assistant", "hi"),
    ]
    # Long-term memory is searchable, archive and window alike.
    assert wait_until(lambda: indexed(client, tenant, "2024-05-01T12:00:00.000Z"))
    hits = retrieve(client, tenant, "2024-05-01T12:00:00.000Z", "tuna")
    assert {h["content"] for h in hits} == {"she likes tuna"} and len(hits) == 2


def test_a_second_run_copies_nothing_twice_and_says_so(app, client, tenant, motorhead, private_redis):
    motorhead.post("s1", [("Human", "a"), ("AI", "b")])
    motorhead.post("s2", [("Human", "c")])
    assert migrate(app, private_redis.url)["copied"]["sessions"] == 2
    motorhead.post("s1", [("Human", "posted to MotorHead after the copy")])
    report = migrate(app, private_redis.url)
    assert report["copied"]["sessions"] == 0
    assert report["skipped"]["exists"]["count"] == 2
    assert [m["content"] for m in history(client, tenant, "s1")] == ["a", "b"]


def test_a_dry_run_reports_and_writes_nothing(app, client, tenant, motorhead, private_redis):
    motorhead.post("s1", [("Human", "a"), ("AI", "b")])
    report = migrate(app, private_redis.url, "--dry-run")
    assert report["dry_run"] is True and report["copied"]["messages"] == 2
    assert client.get("/sessions", headers=tenant.headers).json == []
    assert migrate(app, private_redis.url)["copied"]["sessions"] == 1


def test_a_namespace_copies_its_sessions_only(app, client, tenant, motorhead, private_redis):
    motorhead.post("plain", [("Human", "a")])
    motorhead.post("team-1", [("Human", "b")], namespace="team")
    report = migrate(app, private_redis.url, "--namespace", "team")
    assert report["copied"]["sessions"] == 1
    assert client.get("/sessions", headers=tenant.headers).json == ["team-1"]


def test_deleted_sessions_do_not_come_back_from_long_term_memory(
    app, client, tenant, motorhead, private_redis
):
    motorhead.post("gone", [("Human", "forget me")])
    motorhead.delete("gone")  # MotorHead leaves its long-term hashes behind
    motorhead.post("kept", [("Human", "a")])
    assert migrate(app, private_redis.url)["copied"]["sessions"] == 1
    assert client.get("/sessions", headers=tenant.headers).json == ["kept"]


def test_the_progress_goes_to_stderr_and_the_report_to_stdout(app, tenant, motorhead, private_redis):
    motorhead.post("s1", [("Human", "a")])
    result = run(app, "import-motorhead", "--source", private_redis.url, "--tenant", "acme")
    assert result.exit_code == 0
    assert "Copying sessions" in result.stderr and "Copying" not in result.stdout
    assert json.loads(result.stdout)["copied"]["sessions"] == 1


def test_source_and_tenant_errors_are_one_line_without_the_password(app, tenant):
    for args, code in (
        (("--source", "http://example.com", "--tenant", "acme"), "invalid_source"),
        (("--source", "redis://:hunter2@127.0.0.1:1/0", "--tenant", "acme"), "source_unavailable"),
        (("--source", "redis://127.0.0.1:1/0", "--tenant", "nobody"), "tenant_not_found"),
    ):
        result = run(app, "import-motorhead", *args)
        assert result.exit_code != 0
        output = result.output.strip().splitlines()
        assert len(output) == 1 and code in output[0] and "hunter2" not in result.output, result.output
