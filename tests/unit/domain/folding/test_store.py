"""A fold's Redis commands: its two scripts on the session (the lock, the commit), the
window's plain reads, the fold lock's release and the failure count."""

from __future__ import annotations

import time

import fakeredis
import pytest

from app.domain.errors import StoreUnavailable
from app.domain.folding.scripts import FoldCommit
from app.domain.folding.store import FoldingStore
from app.domain.memory.store import SessionStore
from app.domain.memory.stored_format import NewMessage

from .fakes import TENANT, window_ids


def lock_value(fake_redis, keyspace, session_id: str = "s1") -> bytes | None:
    return fake_redis.get(keyspace.session(TENANT, session_id).lock)


# --- the fold lock: taken by begin_fold, released by unlock when a fold cannot finish ---------


def test_the_fold_lock_is_exclusive_per_session(take_fold_lock, seed):
    seed("s1", 1)
    seed("s2", 1)
    assert take_fold_lock("s1", "token-a")
    assert not take_fold_lock("s1", "token-b")
    assert take_fold_lock("s2", "token-b"), "another session has its own lock"


def test_the_fold_lock_expires_by_itself(take_fold_lock, seed, fake_redis, keyspace):
    seed("s1", 1)
    assert take_fold_lock("s1", "token-a", seconds=0.05)
    time.sleep(0.12)
    assert lock_value(fake_redis, keyspace) is None
    assert take_fold_lock("s1", "token-b")


def test_unlock_releases_only_with_the_token_that_holds_the_lock(
    fold_store, take_fold_lock, seed, fake_redis, keyspace
):
    seed("s1", 1)
    assert take_fold_lock("s1", "token-a")
    fold_store.unlock(TENANT, "s1", "token-b")
    assert lock_value(fake_redis, keyspace) == b"token-a"
    fold_store.unlock(TENANT, "s1", "token-a")
    assert lock_value(fake_redis, keyspace) is None
    assert take_fold_lock("s1", "token-c")


def test_unlock_after_expiry_does_not_release_the_next_holders_lock(
    fold_store, take_fold_lock, seed, fake_redis, keyspace
):
    seed("s1", 1)
    assert take_fold_lock("s1", "old", seconds=0.05)
    time.sleep(0.12)
    assert take_fold_lock("s1", "new")
    fold_store.unlock(TENANT, "s1", "old")
    assert lock_value(fake_redis, keyspace) == b"new"


# --- the failure count ---------------------------------------------------------------------


def gen_of(fold_store, session_id: str) -> str:
    gen = fold_store.fold_state(TENANT, session_id).gen
    assert gen is not None
    return gen


def test_note_failure_counts_the_failures_and_keeps_the_last_error_code(
    fold_store, sessions, seed, fake_redis, keyspace
):
    seed("s1", 2)
    gen = gen_of(fold_store, "s1")
    assert fold_store.note_failure(TENANT, "s1", gen=gen, code="llm_timeout") == 1
    assert fold_store.note_failure(TENANT, "s1", gen=gen, code="llm_rate_limited") == 2
    meta = keyspace.session(TENANT, "s1").meta
    assert fake_redis.hget(meta, "err") == b"llm_rate_limited"


def test_note_failure_is_none_for_a_session_that_never_existed(fold_store, fake_redis, keyspace):
    assert fold_store.note_failure(TENANT, "ghost", gen="whatever", code="llm_error") is None
    assert not fake_redis.exists(keyspace.session(TENANT, "ghost").meta), "nothing is written"


def test_note_failure_is_none_once_the_session_is_deleted(fold_store, sessions, seed):
    seed("s1", 2)
    gen = gen_of(fold_store, "s1")
    sessions.delete_session(TENANT, "s1")
    assert fold_store.note_failure(TENANT, "s1", gen=gen, code="llm_error") is None


def test_note_failure_is_none_for_a_recreated_session(fold_store, sessions, seed, fake_redis, keyspace):
    seed("s1", 2)
    old_gen = gen_of(fold_store, "s1")
    sessions.delete_session(TENANT, "s1")
    seed("s1", 1)
    assert gen_of(fold_store, "s1") != old_gen
    assert fold_store.note_failure(TENANT, "s1", gen=old_gen, code="llm_error") is None
    assert fake_redis.hget(keyspace.session(TENANT, "s1").meta, "fails") is None


# --- a fold's two scripts and the window's plain reads -----------------------------------------


def messages(*contents: str) -> list[NewMessage]:
    return [NewMessage("Human" if i % 2 == 0 else "AI", c, None, 10) for i, c in enumerate(contents)]


def commit_fold(fold_store, folded: list[int]) -> str:
    state = fold_store.begin_fold(TENANT, "s1", lock_token="tok", lock_seconds=30)
    assert state is not None and state.gen is not None
    commit = FoldCommit(state.gen, state.watermark, 5, "S", 10 * len(folded), folded, archive=False)
    return fold_store.finish_fold(
        TENANT, "s1", commit, lock_token="tok", window_size=1000, window_tokens=None
    ).status


def test_fold_state_is_the_whole_window_oldest_first_with_summary_and_watermark(fold_store, sessions):
    sessions.append(TENANT, "s1", messages("a", "b", "c"), context="sum")
    state = fold_store.fold_state(TENANT, "s1")
    assert [(m["id"], m["content"], m["token_count"]) for m in state.messages] == [
        (1, "a", 10),
        (2, "b", 10),
        (3, "c", 10),
    ]
    assert state.summary == "sum" and state.watermark == 0 and state.gen


def test_begin_fold_takes_the_lock_and_reads_the_same_state_as_fold_state(
    fold_store, sessions, fake_redis, keyspace
):
    sessions.append(TENANT, "s1", messages("a", "b", "c"), context="sum")
    state = fold_store.begin_fold(TENANT, "s1", lock_token="mine", lock_seconds=30)
    assert state == fold_store.fold_state(TENANT, "s1")
    lock = keyspace.session(TENANT, "s1").lock
    assert fake_redis.get(lock) == b"mine"
    assert 29_000 < fake_redis.pttl(lock) <= 30_000


def test_begin_fold_while_another_holds_the_lock_reads_nothing(fold_store, sessions, fake_redis, keyspace):
    sessions.append(TENANT, "s1", messages("a"))
    assert fold_store.begin_fold(TENANT, "s1", lock_token="first", lock_seconds=30) is not None
    assert fold_store.begin_fold(TENANT, "s1", lock_token="second", lock_seconds=30) is None
    assert fake_redis.get(keyspace.session(TENANT, "s1").lock) == b"first"


def test_begin_fold_of_an_unknown_session_keeps_no_lock(fold_store, sessions, fake_redis, keyspace):
    state = fold_store.begin_fold(TENANT, "ghost", lock_token="mine", lock_seconds=30)
    assert state is not None and state.gen is None
    assert not fake_redis.exists(keyspace.session(TENANT, "ghost").lock)


def test_fold_state_of_an_unknown_session_has_no_generation(fold_store, sessions):
    state = fold_store.fold_state(TENANT, "ghost")
    assert (state.gen, state.messages, state.summary, state.watermark) == (None, [], None, 0)


def test_a_fold_is_refused_when_the_session_was_recreated_meanwhile(
    fold_store, sessions, fake_redis, keyspace
):
    sessions.append(TENANT, "s1", messages("a", "b", "c"))
    stale = fold_store.fold_state(TENANT, "s1")
    sessions.delete_session(TENANT, "s1")
    sessions.append(TENANT, "s1", messages("x", "y", "z"))
    fake_redis.set(keyspace.session(TENANT, "s1").lock, "tok")
    commit = FoldCommit(stale.gen, 0, 5, "stale summary", 20, [1, 2], archive=False)
    assert (
        fold_store.finish_fold(
            TENANT, "s1", commit, lock_token="tok", window_size=1000, window_tokens=None
        ).status
        == "gone"
    )
    assert window_ids(fold_store, "s1") == [1, 2, 3] and fold_store.fold_state(TENANT, "s1").summary is None


def test_a_fold_is_refused_when_another_fold_committed_first(fold_store, sessions, fake_redis, keyspace):
    sessions.append(TENANT, "s1", messages("a", "b", "c", "d"))
    seen = fold_store.fold_state(TENANT, "s1")
    assert commit_fold(fold_store, [1]) == "ok"
    fake_redis.set(keyspace.session(TENANT, "s1").lock, "late")
    late = FoldCommit(seen.gen, seen.watermark, 5, "late", 10, [2], archive=False)
    assert (
        fold_store.finish_fold(
            TENANT, "s1", late, lock_token="late", window_size=1000, window_tokens=None
        ).status
        == "moved"
    )
    assert fold_store.fold_state(TENANT, "s1").summary == "S"


def test_window_stats_of_an_unknown_session_are_zero(fold_store, sessions):
    assert fold_store.window_stats(TENANT, "ghost") == (0, 0)


def test_tokens_of_a_refused_fold_count_only_for_the_generation_that_spent_them(fold_store, sessions):
    sessions.append(TENANT, "s1", messages("a", "b"))
    state = fold_store.begin_fold(TENANT, "s1", lock_token="tok", lock_seconds=30)
    assert state is not None and state.gen is not None
    for gen, tokens in ((state.gen, 10), ("stale", 1000)):
        refused = FoldCommit(gen, state.watermark + 1, tokens, "S", 10, [1], archive=False)
        fold_store.finish_fold(TENANT, "s1", refused, lock_token="tok", window_size=1000, window_tokens=None)
    assert sessions.read(TENANT, "s1", limit=1).tokens == 10


# --- outages -------------------------------------------------------------------------------------


def test_every_fold_store_operation_raises_store_unavailable_when_redis_is_down(keyspace):
    server = fakeredis.FakeServer()
    client = fakeredis.FakeRedis(server=server)
    SessionStore(client, keyspace).append(TENANT, "s1", messages("a"))
    folds = FoldingStore(client, keyspace)
    server.connected = False
    calls = [
        lambda: folds.fold_state(TENANT, "s1"),
        lambda: folds.window_stats(TENANT, "s1"),
        lambda: folds.begin_fold(TENANT, "s1", lock_token="t", lock_seconds=30),
        lambda: folds.finish_fold(TENANT, "s1", None, lock_token="t", window_size=10, window_tokens=None),
        lambda: folds.unlock(TENANT, "s1", "t"),
        lambda: folds.note_failure(TENANT, "s1", gen="g", code="llm_error"),
    ]
    for call in calls:
        with pytest.raises(StoreUnavailable) as raised:
            call()
        assert raised.value.cause == "ConnectionError"
    server.connected = True
