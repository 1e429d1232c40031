"""Reading MotorHead's Redis: its sessions (listed, namespaced, unlisted), each list oldest
first, its summary and tokens, and the long-term hashes beyond the window."""

from __future__ import annotations

import fakeredis
import pytest
import redis

from app.domain.transfer.motorhead import MotorheadSource, SourceUnavailable
from tests.motorhead_layout import MotorheadWriter


@pytest.fixture
def source_redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


@pytest.fixture
def writer(source_redis) -> MotorheadWriter:
    return MotorheadWriter(source_redis, long_term_memory=True, window_size=4)


def test_the_list_is_read_oldest_first_and_split_at_the_first_separator(source_redis, writer):
    writer.post("s1", [("Human", "hello: there"), ("AI", "hi")])
    writer.post("s1", [("Human", "")])
    source_redis.lpush("session:s1", "no separator", ": no role")
    session = MotorheadSource(source_redis).read("s1")
    assert session.window == [("Human", "hello: there"), ("AI", "hi"), ("Human", "")]
    assert session.unreadable == 2
    assert session.summary is None and session.tokens == 0


def test_the_summary_and_tokens_are_read_and_none_means_no_summary(source_redis, writer):
    writer.post("s1", [("Human", "a")], context="seeded")
    writer.compact("s1", "the summary", 120)
    assert MotorheadSource(source_redis).read("s1").summary == "the summary"
    assert MotorheadSource(source_redis).read("s1").tokens == 120
    writer.compact("s1", "NONE", 5)
    assert MotorheadSource(source_redis).read("s1").summary is None


def test_long_term_messages_not_in_the_window_form_the_archive(source_redis, writer):
    writer.post("s1", [("Human", f"m{i}") for i in range(1, 9)])  # 8 > window 4
    writer.compact("s1", "summary", 10)  # keeps the 3 newest
    writer.post("s1", [("AI", "m3")])  # the same text again, in the window
    source = MotorheadSource(source_redis)
    session = source.read("s1", source.long_term_keys()["s1"])
    assert session.window == [("Human", "m6"), ("Human", "m7"), ("Human", "m8"), ("AI", "m3")]
    assert sorted(session.archive) == [("Human", f"m{i}") for i in range(1, 6)]


def test_sessions_are_listed_by_last_write_with_unlisted_lists_last(source_redis, writer):
    writer.post("late", [("Human", "a")], at=1_700_000_200)
    writer.post("early", [("Human", "a")], at=1_700_000_100)
    writer.post("spaced", [("Human", "a")], namespace="ns", at=1_700_000_300)
    writer.post("early", [("Human", "b")], namespace="ns", at=1_700_000_050)
    source_redis.lpush("session:unlisted", "Human: x")
    listed = MotorheadSource(source_redis).sessions()
    assert [(s.session_id, s.last_write_ms) for s in listed] == [
        ("early", 1_700_000_100_000),
        ("late", 1_700_000_200_000),
        ("spaced", 1_700_000_300_000),
        ("unlisted", None),
    ]


def test_a_namespace_lists_only_its_own_sessions(source_redis, writer):
    writer.post("a", [("Human", "x")])
    writer.post("b", [("Human", "x")], namespace="ns")
    assert [s.session_id for s in MotorheadSource(source_redis, namespace="ns").sessions()] == ["b"]
    assert MotorheadSource(source_redis, namespace="none").sessions() == []


def test_long_term_keys_are_grouped_by_session_and_other_keys_ignored(source_redis, writer):
    writer.post("a", [("Human", "x"), ("AI", "y")])
    writer.post("b:c", [("Human", "z")])
    source_redis.set("motorhead:not-a-hash", "x")
    source_redis.hset("motorhead:no-session", "role", "Human")
    found = MotorheadSource(source_redis).long_term_keys()
    assert {k: len(v) for k, v in found.items()} == {"a": 2, "b:c": 1}


def test_an_unreachable_source_is_one_clear_error():
    client = redis.Redis(port=1, socket_connect_timeout=0.2)
    with pytest.raises(SourceUnavailable) as caught:
        MotorheadSource(client).sessions()
    assert caught.value.code == "source_unavailable" and "port" not in caught.value.message
