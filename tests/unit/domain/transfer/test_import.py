"""Imports: a session restored exactly (ids, times, metadata, summary, tokens), placed by the
tenant's window policy, marked for indexing and folding like an append — and any bad line,
or the session existing, keeps nothing, not even the staged keys."""

from __future__ import annotations

import orjson
import pytest

from app.domain.errors import Conflict, InvalidField, QuotaExceeded, RecollectError, TooLarge
from app.domain.memory.stored_format import NewMessage
from app.domain.transfer.format import read_records
from app.domain.transfer.importer import WINDOW_FACTOR

from .conftest import TENANT

T0 = "2027-01-15T08:00:00.000Z"


def ndjson(*objects: dict) -> list[bytes]:
    return [orjson.dumps(o) + b"\n" for o in objects]


def session(**fields) -> dict:
    return {"type": "session", **fields}


def message(content: str, **fields) -> dict:
    return {"type": "message", "role": "Human", "content": content, **fields}


def keys_left(fake_redis) -> list[bytes]:
    return sorted(k for k in fake_redis.keys("*") if not k.startswith(b"rc:tenant"))


def window_ids(fold_store, session_id: str = "s1") -> list[int]:
    return [m["id"] for m in fold_store.fold_state(TENANT, session_id).messages]


def archive_ids(fake_redis, keyspace, session_id: str = "s1") -> list[int]:
    return [
        int(s)
        for _, s in fake_redis.zrange(keyspace.session(TENANT, session_id).archive, 0, -1, withscores=True)
    ]


# --- a round trip ----------------------------------------------------------------------------


def test_export_delete_import_export_gives_the_same_lines(transfer, sessions, principal, write_session):
    write_session("s1", [f"m{i}" for i in range(1, 10)], folded=5, metadata={"k": [1, {"x": None}]})
    sessions.delete_message(TENANT, "s1", 2)
    before = list(transfer.export_session(TENANT, "s1"))
    sessions.delete_session(TENANT, "s1")
    result = transfer.import_session(principal, "s1", before)
    assert (result.messages, result.window, result.archived, result.dropped) == (8, 4, 4, 0)
    assert list(transfer.export_session(TENANT, "s1")) == before


def test_the_next_append_gets_an_id_above_the_imported_ones(transfer, sessions, principal):
    transfer.import_session(principal, "s1", ndjson(session(last_id=40), message("a", id=7), message("b")))
    appended = sessions.append(TENANT, "s1", [NewMessage("Human", "c", None, 1)])
    assert appended.ids == [41]
    transfer.import_session(principal, "s2", ndjson(session(), message("a", id=7), message("b")))
    assert sessions.append(TENANT, "s2", [NewMessage("Human", "c", None, 1)]).ids == [9]


def test_an_import_keeps_summary_tokens_times_and_metadata(transfer, sessions, principal):
    transfer.import_session(
        principal,
        "s1",
        ndjson(
            session(summary="so far", tokens=77, created_at=T0, updated_at="2027-01-15T09:00:00Z"),
            message("hi", created_at="2027-01-15T08:30:00+00:00", metadata={"a": 1}),
        ),
    )
    view = sessions.read(TENANT, "s1", limit=10)
    assert view.context == "so far" and view.tokens == 77
    (stored,) = [orjson.loads(m) for m in view.messages_json]
    assert stored["created_at"] == "2027-01-15T08:30:00.000Z" and stored["metadata"] == {"a": 1}
    assert stored["token_count"] > 0  # counted again, in the tenant's model
    (line,) = [orjson.loads(x) for x in transfer.export_session(TENANT, "s1")][:1]
    assert line["created_at"] == T0 and line["updated_at"] == "2027-01-15T09:00:00.000Z"


def test_the_session_line_id_is_ignored_the_callers_wins(transfer, principal):
    transfer.import_session(principal, "mine", ndjson(session(session_id="theirs"), message("a")))
    assert orjson.loads(next(iter(transfer.export_session(TENANT, "mine"))))["session_id"] == "mine"


# --- where the messages go ---------------------------------------------------------------------


def test_summarized_messages_go_to_the_archive_the_rest_to_the_window(
    fold_store, transfer, sessions, principal, fake_redis, keyspace
):
    body = ndjson(session(summarized_through=3), *(message(f"m{i}") for i in range(1, 7)))
    result = transfer.import_session(principal, "s1", body)
    assert archive_ids(fake_redis, keyspace) == [1, 2, 3] and window_ids(fold_store) == [4, 5, 6]
    meta = fake_redis.hgetall(keyspace.session(TENANT, "s1").meta)
    assert meta[b"wm"] == b"3" and meta[b"next"] == b"6"
    assert int(meta[b"wt"]) == sum(m["token_count"] for m in fold_store.fold_state(TENANT, "s1").messages)
    assert result.fold_due is False


def test_without_long_term_memory_summarized_messages_are_dropped(
    fold_store, transfer, sessions, make_principal, fake_redis, keyspace
):
    principal = make_principal(long_term_memory=False)
    body = ndjson(session(summarized_through=3), *(message(f"m{i}") for i in range(1, 7)))
    result = transfer.import_session(principal, "s1", body)
    assert (result.window, result.archived, result.dropped) == (3, 0, 3)
    assert archive_ids(fake_redis, keyspace) == [] and window_ids(fold_store) == [4, 5, 6]
    assert fake_redis.zscore(keyspace.index_due, keyspace.due_member(TENANT, "s1")) is None


def test_a_window_over_the_policy_is_marked_for_a_fold(
    fold_store, transfer, sessions, make_principal, fake_redis, keyspace
):
    principal = make_principal(window_size=4)
    result = transfer.import_session(
        principal, "s1", ndjson(session(), *(message(f"m{i}") for i in range(6)))
    )
    assert result.fold_due and window_ids(fold_store) == [1, 2, 3, 4, 5, 6]
    assert fake_redis.zscore(keyspace.due, keyspace.due_member(TENANT, "s1")) is not None
    transfer.import_session(principal, "s2", ndjson(session(), *(message(f"m{i}") for i in range(4))))
    assert fake_redis.zscore(keyspace.due, keyspace.due_member(TENANT, "s2")) is None


def test_a_window_over_the_token_budget_is_marked_for_a_fold(transfer, make_principal, fake_redis, keyspace):
    principal = make_principal(window_tokens=64)
    result = transfer.import_session(principal, "s1", ndjson(session(), message("word " * 100)))
    assert result.fold_due
    assert fake_redis.zscore(keyspace.due, keyspace.due_member(TENANT, "s1")) is not None


def test_unsummarized_messages_beyond_the_bound_go_to_the_archive_as_they_are(
    fold_store, transfer, sessions, make_principal, fake_redis, keyspace
):
    principal = make_principal(window_size=2)
    bound = 2 * WINDOW_FACTOR
    body = ndjson(session(summarized_through=2), *(message(f"m{i}") for i in range(1, bound + 6)))
    result = transfer.import_session(principal, "s1", body)
    # 3..13 are unsummarized: the newest 8 stay in the window, 3, 4 and 5 join 1 and 2.
    assert archive_ids(fake_redis, keyspace) == [1, 2, 3, 4, 5]
    assert window_ids(fold_store) == list(range(6, bound + 6))
    assert (result.window, result.archived) == (bound, 5) and result.fold_due
    assert fake_redis.hget(keyspace.session(TENANT, "s1").meta, "wm") == b"5"


def test_without_long_term_memory_too_many_unsummarized_messages_are_refused(
    transfer, make_principal, fake_redis
):
    principal = make_principal(window_size=2, long_term_memory=False)
    body = ndjson(session(), *(message(f"m{i}") for i in range(1, 2 * WINDOW_FACTOR + 2)))
    with pytest.raises(InvalidField) as caught:
        transfer.import_session(principal, "s1", body)
    assert caught.value.code == "too_many_unsummarized" and caught.value.line == 2 * WINDOW_FACTOR + 2
    assert keys_left(fake_redis) == []


def test_imported_messages_are_marked_for_indexing(transfer, principal, fake_redis, keyspace):
    transfer.import_session(
        principal, "s1", ndjson(session(summarized_through=1), message("a"), message("b"))
    )
    assert fake_redis.zscore(keyspace.index_due, keyspace.due_member(TENANT, "s1")) is not None
    assert fake_redis.hget(keyspace.session(TENANT, "s1").meta, "ix") is None  # all of it pending


def test_the_import_is_listed_by_its_last_write_and_counted(
    transfer, sessions, principal, fake_redis, keyspace
):
    transfer.import_session(
        principal, "old", ndjson(session(updated_at="2020-01-01T00:00:00Z"), message("a"))
    )
    transfer.import_session(
        principal, "new", ndjson(session(updated_at="2021-01-01T00:00:00Z"), message("b"))
    )
    sessions.append(TENANT, "live", [NewMessage("Human", "c", None, 1)])
    assert sessions.list_sessions(TENANT, offset=0, count=10) == ["old", "new", "live"]
    assert fake_redis.zscore(keyspace.sessions_index(TENANT), "old") == 1_577_836_800_000
    assert int(fake_redis.hget(keyspace.usage(TENANT), "messages")) == 3


def test_with_a_ttl_the_import_counts_as_a_write(transfer, sessions, make_principal, fake_redis, keyspace):
    body = ndjson(
        session(updated_at="2020-01-01T00:00:00Z", summarized_through=1), message("a"), message("b")
    )
    transfer.import_session(make_principal(session_ttl_seconds=600), "s1", body)
    keys = keyspace.session(TENANT, "s1")
    for key in (keys.window, keys.meta, keys.archive):
        assert 0 < fake_redis.ttl(key) <= 600
    assert sessions.list_sessions(TENANT, offset=0, count=10, ttl_seconds=600) == ["s1"]
    transfer.import_session(make_principal(), "s2", body)
    assert fake_redis.ttl(keyspace.session(TENANT, "s2").window) == -1  # the staging's TTL is gone


# --- all or nothing --------------------------------------------------------------------------


def test_an_existing_session_is_a_conflict_and_untouched(
    transfer, sessions, principal, write_session, fake_redis
):
    write_session("s1", ["mine"])
    before = list(transfer.export_session(TENANT, "s1"))
    with pytest.raises(Conflict) as caught:
        transfer.import_session(principal, "s1", ndjson(session(), message("theirs")))
    assert caught.value.code == "session_exists"
    assert list(transfer.export_session(TENANT, "s1")) == before


def test_a_session_created_while_importing_wins_and_the_staging_is_dropped(
    fold_store, transfer, sessions, principal, fake_redis
):
    def body():
        yield from ndjson(session(), message("imported"))
        sessions.append(TENANT, "s1", [NewMessage("Human", "posted", None, 1)])

    with pytest.raises(Conflict):
        transfer.import_session(principal, "s1", body())
    assert [m["content"] for m in fold_store.fold_state(TENANT, "s1").messages] == ["posted"]
    assert [k for k in fake_redis.keys("*") if b":imp:" in k] == []


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (b"{oops\n", "line 3: not valid JSON"),
        (b'{"type":"message","role":"Human"}\n', "line 3: content: required"),
        (b'{"type":"message","id":1,"role":"Human","content":"x"}\n', "line 3: id 1 is not above"),
        (b'{"type":"session"}\n', "line 3: a second session line"),
    ],
)
def test_a_bad_line_anywhere_keeps_nothing(transfer, principal, fake_redis, bad, error):
    good = ndjson(session(summarized_through=1), *(message(f"m{i}") for i in range(1, 2)))
    body = [*good, *ndjson(*(message(f"n{i}") for i in range(1200)))]
    body.insert(2, bad)
    with pytest.raises(RecollectError) as caught:
        transfer.import_session(principal, "s1", body)
    assert caught.value.message.startswith(error)
    assert keys_left(fake_redis) == []


def test_a_bad_line_after_many_staged_batches_keeps_nothing(transfer, principal, fake_redis):
    body = [*ndjson(session(summarized_through=600), *(message(f"m{i}") for i in range(1, 1500))), b"[]\n"]
    with pytest.raises(InvalidField, match="line 1501: "):
        transfer.import_session(principal, "s1", body)
    assert keys_left(fake_redis) == []


def test_a_message_over_the_tenants_size_limit_names_its_line(transfer, make_principal, fake_redis):
    principal = make_principal(max_message_bytes=64)
    with pytest.raises(TooLarge) as caught:
        transfer.import_session(principal, "s1", ndjson(session(), message("ok"), message("x" * 65)))
    assert (
        caught.value.message == "line 3: content exceeds 64 bytes"
        and caught.value.code == "message_too_large"
    )
    assert keys_left(fake_redis) == []


def test_an_empty_body_is_refused(transfer, principal):
    with pytest.raises(InvalidField, match="line 1: empty"):
        transfer.import_session(principal, "s1", [])


def test_a_tenant_at_its_session_quota_cannot_import(transfer, sessions, make_principal, fake_redis):
    principal = make_principal(max_sessions=1)
    sessions.append(TENANT, "s0", [NewMessage("Human", "a", None, 1)])
    with pytest.raises(QuotaExceeded):
        transfer.import_session(principal, "s1", ndjson(session(), message("a")))


# --- a file of several sessions ----------------------------------------------------------------


def tenant_file(*sessions_: tuple[str, list[str]]) -> list[bytes]:
    lines: list[bytes] = []
    for session_id, contents in sessions_:
        lines += ndjson(session(session_id=session_id), *(message(c) for c in contents))
    return lines


def test_a_tenant_file_imports_every_session_and_skips_existing_ones(
    fold_store, transfer, sessions, principal
):
    body = tenant_file(("a", ["1", "2"]), ("b", []), ("c", ["3"]))
    sessions.append(TENANT, "b", [NewMessage("Human", "mine", None, 1)])
    assert transfer.check_file(principal, body) == 3
    seen: list[str] = []
    report = transfer.import_file(principal, body, progress=seen.append).to_dict()
    assert seen == ["a", "b", "c"]
    assert report["imported"]["sessions"] == 2 and report["imported"]["messages"] == 3
    assert report["skipped"] == {"count": 1, "reason": "exists", "first": ["b"]}
    assert [m["content"] for m in fold_store.fold_state(TENANT, "b").messages] == ["mine"]
    again = transfer.import_file(principal, body).to_dict()
    assert again["imported"]["sessions"] == 0 and again["skipped"]["count"] == 3


def test_checking_a_file_writes_nothing_and_names_the_bad_line(transfer, principal, fake_redis):
    body = tenant_file(("a", ["1"]), ("b", ["2"]))
    body.append(b'{"type":"message","role":"x"}\n')
    with pytest.raises(InvalidField, match="line 5: content"):
        transfer.check_file(principal, body)
    assert keys_left(fake_redis) == []


def test_a_tenant_file_needs_session_ids_and_valid_ones(transfer, principal):
    with pytest.raises(InvalidField, match="line 1: session_id: required"):
        transfer.check_file(principal, ndjson(session(), message("a")))
    with pytest.raises(InvalidField, match="line 1: session_id: session id must not contain control"):
        transfer.check_file(principal, ndjson(session(session_id="a\x01"), message("a")))


def test_a_one_session_file_can_be_imported_under_another_id(fold_store, transfer, sessions, principal):
    body = tenant_file(("a", ["1"]))
    assert transfer.check_file(principal, body, session_id="renamed") == 1
    transfer.import_file(principal, body, session_id="renamed")
    assert [m["content"] for m in fold_store.fold_state(TENANT, "renamed").messages] == ["1"]
    with pytest.raises(InvalidField, match="line 3: a second session"):
        transfer.check_file(principal, tenant_file(("a", ["1"]), ("b", [])), session_id="renamed")


def test_the_records_of_a_file_are_read_lazily():
    def body():
        yield orjson.dumps(session()) + b"\n"
        raise AssertionError("read too far")

    records = read_records(body())
    assert next(records).line == 1
