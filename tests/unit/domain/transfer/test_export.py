"""Exports: a session's line then its messages, oldest first, archive before window, read a
page at a time — a fold or an append meanwhile neither hides, repeats nor prolongs."""

from __future__ import annotations

import orjson
import pytest

from app.domain.errors import InvalidRequest, NotFound
from app.domain.memory.stored_format import NewMessage
from app.domain.transfer.export import Exporter

from .conftest import TENANT


def parsed(lines) -> list[dict]:
    return [orjson.loads(line) for line in lines]


def test_a_session_exports_its_line_then_archive_and_window_oldest_first(transfer, write_session):
    write_session("s1", [f"m{i}" for i in range(1, 8)], folded=4, metadata={"k": "v"})
    session, *messages = parsed(transfer.export_session(TENANT, "s1"))
    assert session["type"] == "session" and session["session_id"] == "s1"
    assert session["summary"] == "a summary" and session["tokens"] == 42
    assert session["last_id"] == 7 and session["summarized_through"] == 4
    assert session["created_at"].endswith("Z") and session["updated_at"].endswith("Z")
    assert [m["id"] for m in messages] == [1, 2, 3, 4, 5, 6, 7]
    assert [m["content"] for m in messages] == [f"m{i}" for i in range(1, 8)]
    first = messages[0]
    assert list(first) == ["type", "id", "role", "content", "created_at", "metadata"]
    assert first["type"] == "message" and first["role"] == "Human" and first["metadata"] == {"k": "v"}


def test_every_line_ends_with_one_newline(transfer, write_session):
    write_session("s1", ["a\nb", "c"])
    lines = list(transfer.export_session(TENANT, "s1"))
    assert all(line.endswith(b"\n") and line.count(b"\n") == 1 for line in lines)


@pytest.mark.parametrize("page", [1, 2, 3, 4, 7, 100])
def test_pages_of_any_size_give_the_same_lines(transfer_store, write_session, page):
    write_session("s1", [f"m{i}" for i in range(1, 8)], folded=3)
    expected = list(Exporter(transfer_store, page=100).session(TENANT, "s1"))
    assert list(Exporter(transfer_store, page=page).session(TENANT, "s1")) == expected
    assert len(expected) == 8


def test_a_fold_between_two_pages_neither_hides_nor_repeats_a_message(
    fold_store, transfer_store, sessions, write_session, fake_redis, keyspace
):
    write_session("s1", [f"m{i}" for i in range(1, 9)], folded=2)
    lines = Exporter(transfer_store, page=2).session(TENANT, "s1")
    head = [next(lines), next(lines), next(lines)]  # the session line, messages 1 and 2
    # A fold moves 3, 4, 5 from the window to the archive before the next page.
    from app.domain.folding.scripts import FoldCommit

    state = fold_store.begin_fold(TENANT, "s1", lock_token="t", lock_seconds=30)
    assert state is not None and state.gen is not None
    commit = FoldCommit(state.gen, state.watermark, 0, "newer", 15, [3, 4, 5], archive=True)
    finished = fold_store.finish_fold(
        TENANT, "s1", commit, lock_token="t", window_size=1000, window_tokens=None
    )
    assert finished.status == "ok"
    ids = [m["id"] for m in parsed([*head[1:], *lines])]
    assert ids == [1, 2, 3, 4, 5, 6, 7, 8]


def test_messages_appended_during_an_export_are_left_for_the_next(transfer_store, sessions, write_session):
    write_session("s1", ["a", "b", "c"])
    lines = Exporter(transfer_store, page=1).session(TENANT, "s1")
    next(lines)
    sessions.append(TENANT, "s1", [NewMessage("Human", "later", None, 1)])
    assert [m["content"] for m in parsed(lines)] == ["a", "b", "c"]


def test_a_session_deleted_during_an_export_ends_it(transfer_store, sessions, write_session):
    write_session("s1", ["a", "b", "c"])
    lines = Exporter(transfer_store, page=1).session(TENANT, "s1")
    next(lines), next(lines)
    sessions.delete_session(TENANT, "s1")
    assert list(lines) == []


def test_a_deleted_message_is_not_exported(transfer, sessions, write_session):
    write_session("s1", ["a", "b", "c"], folded=1)
    sessions.delete_message(TENANT, "s1", 1)
    sessions.delete_message(TENANT, "s1", 3)
    session, *messages = parsed(transfer.export_session(TENANT, "s1"))
    assert [m["content"] for m in messages] == ["b"] and session["last_id"] == 3


def test_an_unknown_session_is_not_found_before_any_line(transfer):
    with pytest.raises(NotFound) as caught:
        transfer.export_session(TENANT, "nobody")
    assert caught.value.code == "session_not_found"
    with pytest.raises(InvalidRequest):
        transfer.export_session(TENANT, "bad\x00id")


def test_a_tenant_export_holds_each_session_followed_by_its_messages(transfer, write_session):
    for n in range(1, 251):  # more than one ZSCAN step
        write_session(f"s{n}", [f"{n}-a", f"{n}-b"])
    write_session("theirs", ["not ours"], tenant_id="globex")
    current = None
    seen: dict[str, list[str]] = {}
    for line in parsed(transfer.export_tenant(TENANT)):
        if line["type"] == "session":
            current = line["session_id"]
            assert current not in seen
            seen[current] = []
        else:
            seen[current].append(line["content"])
    assert seen == {f"s{n}": [f"{n}-a", f"{n}-b"] for n in range(1, 251)}


def test_a_tenant_without_sessions_exports_nothing(transfer):
    assert list(transfer.export_tenant(TENANT)) == []
