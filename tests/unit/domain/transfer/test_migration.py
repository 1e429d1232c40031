"""Copying MotorHead sessions into a tenant: order, summary, tokens and last-write times
kept, long-term memory into the archive, every skip reported with its reason, and a second
run copying nothing twice."""

from __future__ import annotations

import fakeredis
import orjson
import pytest

from app.domain.transfer.migration import MotorheadMigration
from app.domain.transfer.motorhead import MotorheadSource
from tests.motorhead_layout import MotorheadWriter

from .conftest import TENANT


@pytest.fixture
def source_redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


@pytest.fixture
def writer(source_redis) -> MotorheadWriter:
    return MotorheadWriter(source_redis, long_term_memory=True, window_size=4)


def migrate(source_redis, transfer, principal, *, dry_run=False, namespace=None) -> dict:
    migration = MotorheadMigration(
        MotorheadSource(source_redis, namespace=namespace), transfer, principal, dry_run=dry_run
    )
    for listed in migration.plan():
        migration.copy(listed)
    return migration.report.to_dict()


def exported(transfer, session_id: str) -> list[dict]:
    return [orjson.loads(line) for line in transfer.export_session(TENANT, session_id)]


def test_a_session_is_copied_in_order_with_its_summary_tokens_and_time(
    source_redis, writer, transfer, principal
):
    writer.post("s1", [("Human", f"m{i}") for i in range(1, 9)], at=1_700_000_000)
    writer.compact("s1", "what happened", 321)
    writer.post("s1", [("AI", "reply")], at=1_700_000_100)
    report = migrate(source_redis, transfer, principal)
    assert report["copied"]["sessions"] == 1 and report["copied"]["messages"] == 9
    session, *messages = exported(transfer, "s1")
    assert session["summary"] == "what happened" and session["tokens"] == 321
    assert session["updated_at"] == "2023-11-14T22:15:00.000Z"
    assert session["summarized_through"] == 5
    assert sorted(m["content"] for m in messages[:5]) == [f"m{i}" for i in range(1, 6)]  # no order kept
    assert [m["content"] for m in messages[5:]] == ["m6", "m7", "m8", "reply"]
    assert [m["id"] for m in messages] == list(range(1, 10))
    assert {m["created_at"] for m in messages} == {"2023-11-14T22:15:00.000Z"}


def test_the_tenants_session_list_keeps_motorheads_order(source_redis, writer, transfer, principal, sessions):
    writer.post("b", [("Human", "x")], at=1_700_000_200)
    writer.post("a", [("Human", "x")], at=1_700_000_100)
    migrate(source_redis, transfer, principal)
    assert sessions.list_sessions(TENANT, offset=0, count=10) == ["a", "b"]


def test_a_second_run_copies_nothing_twice(source_redis, writer, transfer, principal):
    writer.post("s1", [("Human", "a")])
    writer.post("s2", [("Human", "b")])
    migrate(source_redis, transfer, principal)
    before = exported(transfer, "s1")
    report = migrate(source_redis, transfer, principal)
    assert report["copied"]["sessions"] == 0
    assert report["skipped"]["exists"]["count"] == 2
    assert exported(transfer, "s1") == before


def test_a_dry_run_writes_nothing_but_reports_the_same(source_redis, writer, transfer, principal, fake_redis):
    writer.post("s1", [("Human", "a"), ("AI", "b")])
    report = migrate(source_redis, transfer, principal, dry_run=True)
    assert report["dry_run"] is True and report["copied"]["messages"] == 2
    assert fake_redis.keys("*") == []


def test_skips_say_why(source_redis, writer, transfer, make_principal, write_session):
    principal = make_principal(max_message_bytes=64)
    writer.post("fine", [("Human", "a")])
    writer.post("huge", [("Human", "x" * 65)])
    writer.post("bad\x01id", [("Human", "a")])
    writer.post("ours", [("Human", "theirs")])
    write_session("ours", ["mine"])
    source_redis.zadd("sessions", {"ghost": 1})  # listed, but its data was deleted
    report = migrate(source_redis, transfer, principal)
    assert report["copied"]["sessions"] == 1
    skipped = report["skipped"]
    assert skipped["message_too_large"]["sessions"] == [
        {"session_id": "huge", "why": "message 1: content exceeds 64 bytes"}
    ]
    assert skipped["invalid_session_id"]["count"] == 1
    assert skipped["exists"]["sessions"][0]["session_id"] == "ours"
    assert skipped["empty"]["sessions"][0]["session_id"] == "ghost"


def test_a_namespace_copies_only_its_sessions(source_redis, writer, transfer, principal):
    writer.post("a", [("Human", "x")])
    writer.post("b", [("Human", "y")], namespace="team")
    report = migrate(source_redis, transfer, principal, namespace="team")
    assert report["copied"]["sessions"] == 1
    assert exported(transfer, "b")[1]["content"] == "y"


def test_without_long_term_memory_only_the_window_is_kept(source_redis, writer, transfer, make_principal):
    writer.post("s1", [("Human", f"m{i}") for i in range(1, 9)])
    writer.compact("s1", "summary", 1)
    report = migrate(source_redis, transfer, make_principal(long_term_memory=False))
    assert report["copied"]["dropped"] == 5
    assert [m["content"] for m in exported(transfer, "s1")[1:]] == ["m6", "m7", "m8"]


def test_a_list_longer_than_the_window_is_left_to_a_fold(source_redis, writer, transfer, make_principal):
    writer.post("s1", [("Human", f"m{i}") for i in range(1, 11)])
    report = migrate(source_redis, transfer, make_principal(window_size=4))
    assert report["copied"]["to_summarize"] == 1 and report["copied"]["window"] == 10
