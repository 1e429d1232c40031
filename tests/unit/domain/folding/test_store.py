"""A fold's own Redis state besides the session: the fold lock and the failure count."""

from __future__ import annotations

import time

from .fakes import TENANT


def lock_value(fake_redis, keyspace, session_id: str = "s1") -> bytes | None:
    return fake_redis.get(keyspace.session(TENANT, session_id).lock)


# --- the fold lock: taken by SessionStore.begin_fold, released here when a fold cannot finish --


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
    fold_locks, take_fold_lock, seed, fake_redis, keyspace
):
    seed("s1", 1)
    assert take_fold_lock("s1", "token-a")
    fold_locks.unlock(TENANT, "s1", "token-b")
    assert lock_value(fake_redis, keyspace) == b"token-a"
    fold_locks.unlock(TENANT, "s1", "token-a")
    assert lock_value(fake_redis, keyspace) is None
    assert take_fold_lock("s1", "token-c")


def test_unlock_after_expiry_does_not_release_the_next_holders_lock(
    fold_locks, take_fold_lock, seed, fake_redis, keyspace
):
    seed("s1", 1)
    assert take_fold_lock("s1", "old", seconds=0.05)
    time.sleep(0.12)
    assert take_fold_lock("s1", "new")
    fold_locks.unlock(TENANT, "s1", "old")
    assert lock_value(fake_redis, keyspace) == b"new"


# --- the failure count ---------------------------------------------------------------------


def gen_of(sessions, session_id: str) -> str:
    gen = sessions.fold_state(TENANT, session_id).gen
    assert gen is not None
    return gen


def test_note_failure_counts_the_failures_and_keeps_the_last_error_code(
    fold_locks, sessions, seed, fake_redis, keyspace
):
    seed("s1", 2)
    gen = gen_of(sessions, "s1")
    assert fold_locks.note_failure(TENANT, "s1", gen=gen, code="llm_timeout") == 1
    assert fold_locks.note_failure(TENANT, "s1", gen=gen, code="llm_rate_limited") == 2
    meta = keyspace.session(TENANT, "s1").meta
    assert fake_redis.hget(meta, "err") == b"llm_rate_limited"


def test_note_failure_is_none_for_a_session_that_never_existed(fold_locks, fake_redis, keyspace):
    assert fold_locks.note_failure(TENANT, "ghost", gen="whatever", code="llm_error") is None
    assert not fake_redis.exists(keyspace.session(TENANT, "ghost").meta), "nothing is written"


def test_note_failure_is_none_once_the_session_is_deleted(fold_locks, sessions, seed):
    seed("s1", 2)
    gen = gen_of(sessions, "s1")
    sessions.delete_session(TENANT, "s1")
    assert fold_locks.note_failure(TENANT, "s1", gen=gen, code="llm_error") is None


def test_note_failure_is_none_for_a_recreated_session(fold_locks, sessions, seed, fake_redis, keyspace):
    seed("s1", 2)
    old_gen = gen_of(sessions, "s1")
    sessions.delete_session(TENANT, "s1")
    seed("s1", 1)
    assert gen_of(sessions, "s1") != old_gen
    assert fold_locks.note_failure(TENANT, "s1", gen=old_gen, code="llm_error") is None
    assert fake_redis.hget(keyspace.session(TENANT, "s1").meta, "fails") is None
