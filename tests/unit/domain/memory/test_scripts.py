"""The typed wrappers of the scripts on a session's keys — memory's append and delete, and a
fold's finish (``folding.scripts``): what each does to a session, what it answers, and that
a script missing from Redis's cache (NOSCRIPT) is sent again by EVAL."""

from __future__ import annotations

from typing import Any

import pytest
import redis.exceptions

from app.domain.folding.scripts import FinishFoldScript, FoldCommit, FoldEnd
from app.domain.memory.scripts import AppendResult, DeleteMessageScript
from app.domain.scheduling.outcome import FinishedRun

from .conftest import TENANT, messages

LOCK = "lock-token"
DUE = "due"
MEMBER = f"{TENANT}:s1"
NOW = 1_000.0


class RecordingClient:
    """A client that records which of EVALSHA and EVAL the wrappers send."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.sent: list[str] = []

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        self.sent.append("EVALSHA")
        return self._client.evalsha(sha, numkeys, *keys_and_args)

    def eval(self, source: str, numkeys: int, *keys_and_args: Any) -> Any:
        self.sent.append("EVAL")
        return self._client.eval(source, numkeys, *keys_and_args)


@pytest.fixture
def keys(keyspace):
    return keyspace.session(TENANT, "s1")


@pytest.fixture
def gen(fold_store, store, fake_redis, keys) -> str:
    """A session s1 with messages 1..4 (10 tokens each), its fold lock held by ``LOCK``."""
    store.append(TENANT, "s1", messages("m1", "m2", "m3", "m4"))
    fake_redis.set(keys.lock, LOCK)
    value = fold_store.fold_state(TENANT, "s1").gen
    assert value is not None
    return value


def window_ids(fake_redis, keys) -> list[int]:
    return [int(raw[6 : raw.index(b",")]) for raw in fake_redis.lrange(keys.window, 0, -1)]


def snapshot(fake_redis, keys) -> tuple[list[bytes], dict[bytes, bytes]]:
    return fake_redis.lrange(keys.window, 0, -1), fake_redis.hgetall(keys.meta)


def commit(gen: str, ids: list[int], **changes: Any) -> FoldCommit:
    values: dict[str, Any] = {
        "gen": gen,
        "expected_watermark": 0,
        "tokens_spent": 7,
        "summary": "S",
        "folded_tokens": 10 * len(ids),
        "folded_ids": ids,
        "archive": False,
    }
    values.update(changes)
    return FoldCommit(**values)


def finish(
    client: Any,
    keys: Any,
    fold: FoldCommit | None,
    *,
    token: str = LOCK,
    window_size: int = 100,
    window_tokens: int | None = None,
    due: str | None = None,
) -> FinishedRun:
    end = FoldEnd(token, fold, window_size, window_tokens, due_member=MEMBER, now=NOW)
    return FinishFoldScript().run(client, keys, end, due=due)


def committed(client: Any, keys: Any, fold: FoldCommit) -> str:
    """The commit's status, without a due set (as on Redis Cluster)."""
    return finish(client, keys, fold).status


# --- AppendResult ------------------------------------------------------------------------------


def test_append_result_ids_span_the_first_to_the_last_id():
    result = AppendResult(4, 6, 6, False, False, 60)
    assert result.ids == [4, 5, 6]
    assert result.refused is False and result.fold_claimed is None


def test_append_result_of_an_empty_append_has_no_ids():
    assert AppendResult(5, 4, 4, False, False, 40).ids == []


# --- finish_fold.lua: the commit ---------------------------------------------------------------------------


def test_a_commit_drops_the_folded_head_and_stores_summary_watermark_and_counts(fake_redis, keys, gen):
    assert committed(fake_redis, keys, commit(gen, [1, 2])) == "ok"
    assert window_ids(fake_redis, keys) == [3, 4]
    meta = fake_redis.hgetall(keys.meta)
    assert meta[b"sum"] == b"S"
    assert meta[b"wm"] == b"2"
    assert meta[b"folded"] == b"2"
    assert meta[b"tok"] == b"7"
    assert meta[b"wt"] == b"20", "the folded messages' tokens leave the window's count"


def test_successive_commits_accumulate_the_folded_count_and_the_tokens_spent(fake_redis, keys, gen):
    assert committed(fake_redis, keys, commit(gen, [1])) == "ok"
    fake_redis.set(keys.lock, LOCK)  # the next fold's lock
    assert committed(fake_redis, keys, commit(gen, [2, 3], expected_watermark=1, summary="S2")) == "ok"
    meta = fake_redis.hgetall(keys.meta)
    assert (meta[b"wm"], meta[b"folded"], meta[b"tok"], meta[b"sum"]) == (b"3", b"3", b"14", b"S2")
    assert window_ids(fake_redis, keys) == [4]


def test_a_commit_without_a_summary_keeps_the_previous_one(store, fake_redis, keys, gen):
    store.append(TENANT, "s1", [], context="earlier summary")
    assert committed(fake_redis, keys, commit(gen, [1], summary=None)) == "ok"
    assert fake_redis.hget(keys.meta, "sum") == b"earlier summary"


def test_a_commit_with_a_summary_replaces_the_previous_one(store, fake_redis, keys, gen):
    store.append(TENANT, "s1", [], context="earlier summary")
    assert committed(fake_redis, keys, commit(gen, [1], summary='new "one" ✓')) == "ok"
    assert fake_redis.hget(keys.meta, "sum") == 'new "one" ✓'.encode()


@pytest.mark.parametrize("lock_value", [None, "someone-else"])
def test_a_commit_is_refused_with_lock_unless_its_token_holds_the_lock(fake_redis, keys, gen, lock_value):
    if lock_value is None:
        fake_redis.delete(keys.lock)
    else:
        fake_redis.set(keys.lock, lock_value)
    before = snapshot(fake_redis, keys)
    assert committed(fake_redis, keys, commit(gen, [1, 2], tokens_spent=0)) == "lock"
    assert snapshot(fake_redis, keys) == before


def test_the_lock_is_checked_before_anything_else(fake_redis, keys, gen):
    fake_redis.delete(keys.lock)
    stale = commit("other-gen", [3], expected_watermark=9, tokens_spent=0)
    assert committed(fake_redis, keys, stale) == "lock"


def test_a_commit_for_another_generation_of_the_session_is_refused_with_gone(fake_redis, keys, gen):
    before = snapshot(fake_redis, keys)
    assert committed(fake_redis, keys, commit("not-" + gen, [1, 2])) == "gone"
    assert snapshot(fake_redis, keys) == before


def test_a_commit_for_a_session_deleted_while_folding_is_refused_with_gone(store, fake_redis, keys, gen):
    store.delete_session(TENANT, "s1")
    fake_redis.set(keys.lock, LOCK)  # the lock is held, but the session is gone
    assert committed(fake_redis, keys, commit(gen, [1, 2])) == "gone"
    assert not fake_redis.exists(keys.window, keys.meta), "a refused commit writes nothing"


def test_a_commit_from_a_stale_watermark_is_refused_with_moved(fake_redis, keys, gen):
    assert committed(fake_redis, keys, commit(gen, [1])) == "ok"
    fake_redis.set(keys.lock, LOCK)
    before = snapshot(fake_redis, keys)
    assert committed(fake_redis, keys, commit(gen, [2], expected_watermark=0, tokens_spent=0)) == "moved"
    assert snapshot(fake_redis, keys) == before


@pytest.mark.parametrize(
    "ids",
    [
        [2, 3],  # not the head of the window
        [1, 3],  # not contiguous
        [1, 2, 3, 4, 5],  # more than the window holds
    ],
)
def test_a_commit_whose_ids_are_not_the_windows_head_is_refused_with_changed(fake_redis, keys, gen, ids):
    before = snapshot(fake_redis, keys)
    assert committed(fake_redis, keys, commit(gen, ids, tokens_spent=0)) == "changed"
    assert snapshot(fake_redis, keys) == before


def test_a_commit_is_refused_when_a_folded_message_was_deleted_meanwhile(store, fake_redis, keys, gen):
    assert store.delete_message(TENANT, "s1", 2)
    assert committed(fake_redis, keys, commit(gen, [1, 2])) == "changed"
    assert window_ids(fake_redis, keys) == [1, 3, 4]


def test_a_commit_compares_whole_ids_not_prefixes(fold_store, store, fake_redis, keys):
    store.append(TENANT, "s1", messages(*(f"m{i}" for i in range(1, 13))))
    fake_redis.set(keys.lock, LOCK)
    gen = fold_store.fold_state(TENANT, "s1").gen
    fake_redis.lpop(keys.window)  # the window now starts at id 2
    assert committed(fake_redis, keys, commit(gen, [1])) == "changed"
    fake_redis.lpop(keys.window, 9)  # ... and now at id 11
    fake_redis.set(keys.lock, LOCK)  # each fold takes the lock anew
    assert committed(fake_redis, keys, commit(gen, [1])) == "changed"
    fake_redis.set(keys.lock, LOCK)
    assert committed(fake_redis, keys, commit(gen, [11])) == "ok"


def test_a_commit_with_the_archive_moves_the_folded_elements_scored_by_id(fake_redis, keys, gen):
    head = fake_redis.lrange(keys.window, 0, 1)
    assert committed(fake_redis, keys, commit(gen, [1, 2], archive=True)) == "ok"
    assert fake_redis.zrange(keys.archive, 0, -1, withscores=True) == [(head[0], 1.0), (head[1], 2.0)]
    assert window_ids(fake_redis, keys) == [3, 4]


def test_the_archive_takes_the_sessions_remaining_ttl(fake_redis, keys, gen):
    fake_redis.expire(keys.meta, 50)
    assert committed(fake_redis, keys, commit(gen, [1], archive=True)) == "ok"
    assert 49 <= fake_redis.ttl(keys.archive) <= 50


def test_without_a_session_ttl_the_archive_does_not_expire(fake_redis, keys, gen):
    assert committed(fake_redis, keys, commit(gen, [1], archive=True)) == "ok"
    assert fake_redis.ttl(keys.archive) == -1


def test_a_refused_commit_archives_nothing(fake_redis, keys, gen):
    assert committed(fake_redis, keys, commit(gen, [2], archive=True)) == "changed"
    assert not fake_redis.exists(keys.archive)


# --- delete_message.lua ------------------------------------------------------------------------


def test_deleting_a_message_removes_it_and_its_tokens_from_the_window(store, fake_redis, keys):
    store.append(TENANT, "s1", [messages("a")[0], messages("b", tokens=25)[0], messages("c")[0]])
    assert DeleteMessageScript().run(fake_redis, keys, 2) is True
    assert window_ids(fake_redis, keys) == [1, 3]
    assert fake_redis.hget(keys.meta, "wt") == b"20"


def test_deleting_a_message_not_in_the_window_answers_false_and_changes_nothing(store, fake_redis, keys):
    store.append(TENANT, "s1", messages("a", "b"))
    before = snapshot(fake_redis, keys)
    script = DeleteMessageScript()
    assert script.run(fake_redis, keys, 3) is False
    assert script.run(fake_redis, keys, 0) is False
    assert snapshot(fake_redis, keys) == before


def test_deleting_a_message_twice_answers_false_the_second_time(store, fake_redis, keys):
    store.append(TENANT, "s1", messages("a", "b"))
    script = DeleteMessageScript()
    assert script.run(fake_redis, keys, 1) is True
    assert script.run(fake_redis, keys, 1) is False
    assert fake_redis.hget(keys.meta, "wt") == b"10"


def test_deleting_from_a_session_that_does_not_exist_creates_nothing(fake_redis, keys):
    assert DeleteMessageScript().run(fake_redis, keys, 1) is False
    assert not fake_redis.exists(keys.window, keys.meta)


def test_deleting_matches_the_whole_id_not_a_prefix(store, fake_redis, keys):
    store.append(TENANT, "s1", messages(*(f"m{i}" for i in range(1, 13))))
    assert DeleteMessageScript().run(fake_redis, keys, 1) is True
    assert window_ids(fake_redis, keys) == list(range(2, 13))
    assert DeleteMessageScript().run(fake_redis, keys, 1) is False
    assert window_ids(fake_redis, keys) == list(range(2, 13)), "id 10, 11 and 12 are not id 1"


def test_deleting_subtracts_the_messages_own_token_count_not_lookalikes_in_content_or_metadata(
    store, fake_redis, keys
):
    tricky = messages('x,"n":999,', tokens=7)[0]
    store.append(TENANT, "s1", [tricky])
    store.append(TENANT, "s1", [messages("y", tokens=5)[0]])
    assert DeleteMessageScript().run(fake_redis, keys, 1) is True
    assert fake_redis.hget(keys.meta, "wt") == b"5"


@pytest.mark.parametrize(
    "legacy",
    [
        b'{"id":1,"role":"Human","content":"old","created_at":"2025-01-01T00:00:00.000Z","token_count":4}',
        b'{"id":1,"role":"AI","content":"\\"token_count\\":99","created_at":"t","token_count":4,'
        b'"metadata":{"token_count":999}}',
    ],
)
def test_deleting_a_legacy_long_key_element_subtracts_its_token_count(fake_redis, keys, legacy):
    fake_redis.rpush(keys.window, legacy)
    fake_redis.hset(keys.meta, mapping={"gen": "g", "wt": 10})
    assert DeleteMessageScript().run(fake_redis, keys, 1) is True
    assert fake_redis.llen(keys.window) == 0
    assert fake_redis.hget(keys.meta, "wt") == b"6"


def test_deleting_reaches_an_archived_message(fake_redis, keys, gen):
    assert committed(fake_redis, keys, commit(gen, [1, 2], archive=True)) == "ok"
    wt = fake_redis.hget(keys.meta, "wt")
    script = DeleteMessageScript()
    assert script.run(fake_redis, keys, 1) is True
    assert [score for _, score in fake_redis.zrange(keys.archive, 0, -1, withscores=True)] == [2.0]
    assert fake_redis.hget(keys.meta, "wt") == wt, "an archived message holds no window tokens"
    assert script.run(fake_redis, keys, 1) is False


# --- finish_fold.lua: tokens of a refused commit ---------------------------------------------


@pytest.mark.parametrize("refusal", ["lock", "moved", "changed"])
def test_tokens_spent_on_a_refused_commit_still_count_for_the_same_generation(fake_redis, keys, gen, refusal):
    if refusal == "lock":
        fake_redis.set(keys.lock, "someone-else")
    fold = commit(
        gen, [2] if refusal == "changed" else [1], expected_watermark=5 if refusal == "moved" else 0
    )
    assert committed(fake_redis, keys, fold) == refusal
    assert fake_redis.hget(keys.meta, "tok") == b"7", "billed tokens are counted even without a commit"
    assert window_ids(fake_redis, keys) == [1, 2, 3, 4]


def test_tokens_spent_for_another_generation_are_dropped(fake_redis, keys, gen):
    assert committed(fake_redis, keys, commit("not-" + gen, [1])) == "gone"
    assert fake_redis.hget(keys.meta, "tok") is None


def test_a_refused_commit_does_not_resurrect_a_deleted_session(store, fake_redis, keys, gen):
    store.delete_session(TENANT, "s1")
    fake_redis.set(keys.lock, LOCK)
    assert committed(fake_redis, keys, commit(gen, [1])) == "gone"
    assert not fake_redis.exists(keys.meta, keys.window)


# --- finish_fold.lua: the lock, the re-check and the due mark ----------------------------------


def test_finishing_releases_the_folds_own_lock_whether_or_not_it_commits(fake_redis, keys, gen):
    assert finish(fake_redis, keys, commit(gen, [1])).status == "ok"
    assert not fake_redis.exists(keys.lock)
    fake_redis.set(keys.lock, LOCK)
    assert finish(fake_redis, keys, commit(gen, [3], expected_watermark=1)).status == "changed"
    assert not fake_redis.exists(keys.lock)
    fake_redis.set(keys.lock, LOCK)
    assert finish(fake_redis, keys, None).status == "released"
    assert not fake_redis.exists(keys.lock)


def test_finishing_never_releases_a_lock_another_process_holds_now(fake_redis, keys, gen):
    fake_redis.set(keys.lock, "someone-else")
    assert finish(fake_redis, keys, commit(gen, [1])).status == "lock"
    assert finish(fake_redis, keys, None).status == "released"
    assert fake_redis.get(keys.lock) == b"someone-else"


def test_finishing_without_a_commit_changes_nothing_but_the_lock(fake_redis, keys, gen):
    before = snapshot(fake_redis, keys)
    assert finish(fake_redis, keys, None) == FinishedRun("released", more_due=False, settled=False)
    assert snapshot(fake_redis, keys) == before


@pytest.mark.parametrize(
    ("window_size", "window_tokens", "more_due"),
    [
        (2, None, False),  # 2 messages left after folding 2 of 4
        (1, None, True),  # more messages than the window holds
        (10, 20, False),  # 20 tokens: at the bound, not over it
        (10, 19, True),  # over the token bound
    ],
)
def test_finishing_re_checks_the_window_after_the_commit(
    fake_redis, keys, gen, window_size, window_tokens, more_due
):
    finished = finish(
        fake_redis, keys, commit(gen, [1, 2]), window_size=window_size, window_tokens=window_tokens
    )
    assert (finished.status, finished.more_due) == ("ok", more_due)


def test_on_a_single_node_a_settled_fold_drops_its_due_mark(fake_redis, keys, gen):
    fake_redis.zadd(DUE, {MEMBER: NOW + 150})  # this fold's lease
    finished = finish(fake_redis, keys, commit(gen, [1, 2]), window_size=2, due=DUE)
    assert finished == FinishedRun("ok", more_due=False, settled=True)
    assert fake_redis.zscore(DUE, MEMBER) is None


def test_on_a_single_node_a_fold_with_more_to_do_leaves_the_session_due_now(fake_redis, keys, gen):
    fake_redis.zadd(DUE, {MEMBER: NOW + 150})
    finished = finish(fake_redis, keys, commit(gen, [1]), window_size=2, due=DUE)
    assert finished == FinishedRun("ok", more_due=True, settled=True)
    assert fake_redis.zscore(DUE, MEMBER) == NOW, "due now, so a claim can take it at once"


@pytest.mark.parametrize(("window_size", "due_at"), [(10, None), (3, NOW)])
def test_a_fold_with_nothing_to_commit_settles_the_due_mark_too(fake_redis, keys, gen, window_size, due_at):
    fake_redis.zadd(DUE, {MEMBER: NOW + 150})
    assert finish(fake_redis, keys, None, window_size=window_size, due=DUE).settled
    assert fake_redis.zscore(DUE, MEMBER) == due_at


def test_a_fold_of_a_session_deleted_meanwhile_settles_the_due_mark(fake_redis, keys, gen):
    fake_redis.zadd(DUE, {MEMBER: NOW + 150})
    finished = finish(fake_redis, keys, commit("not-" + gen, [1]), window_size=10, due=DUE)
    assert (finished.status, finished.settled) == ("gone", True)
    assert fake_redis.zscore(DUE, MEMBER) is None


def test_a_refused_commit_leaves_the_due_mark_to_the_caller(fake_redis, keys, gen):
    fake_redis.zadd(DUE, {MEMBER: NOW + 150})
    finished = finish(fake_redis, keys, commit(gen, [3]), window_size=2, due=DUE)
    assert (finished.status, finished.settled) == ("changed", False)
    assert fake_redis.zscore(DUE, MEMBER) == NOW + 150


def test_without_the_due_set_nothing_is_settled(fake_redis, keys, gen):
    fake_redis.zadd(DUE, {MEMBER: NOW + 150})
    assert finish(fake_redis, keys, commit(gen, [1, 2]), window_size=2).settled is False
    assert fake_redis.zscore(DUE, MEMBER) == NOW + 150


# --- the script cache: EVALSHA, and EVAL on NOSCRIPT -------------------------------------------


def test_a_script_unknown_to_redis_is_sent_by_eval_once_then_by_evalsha(fake_redis, keys, gen):
    fake_redis.script_flush()
    client = RecordingClient(fake_redis)
    refused = commit(gen, [9])  # refused, but its 7 tokens are counted: a visible effect
    assert finish(client, keys, refused).status == "changed"
    assert client.sent == ["EVALSHA", "EVAL"]
    fake_redis.set(keys.lock, LOCK)
    assert finish(client, keys, refused).status == "changed"
    assert client.sent == ["EVALSHA", "EVAL", "EVALSHA"], "EVAL cached the script again"
    assert fake_redis.hget(keys.meta, "tok") == b"14", "each run applied exactly once"


def test_every_wrapper_still_works_after_the_script_cache_is_flushed(fake_redis, keys, gen):
    # Run each once so it is cached, then lose the cache (a Redis restart or SCRIPT FLUSH).
    delete_message = DeleteMessageScript()
    assert delete_message.run(fake_redis, keys, 99) is False
    assert committed(fake_redis, keys, commit(gen, [9], tokens_spent=0)) == "changed"
    fake_redis.script_flush()

    client = RecordingClient(fake_redis)
    assert delete_message.run(client, keys, 4) is True
    fake_redis.set(keys.lock, LOCK)
    assert committed(client, keys, commit(gen, [1, 2])) == "ok"
    assert client.sent == ["EVALSHA", "EVAL"] * 2
    assert window_ids(fake_redis, keys) == [3]
    assert fake_redis.hget(keys.meta, "tok") == b"7"


def test_a_script_error_other_than_noscript_is_raised_not_retried(fake_redis, keys):
    script = DeleteMessageScript()
    script.run(fake_redis, keys, 1)  # cached now
    fake_redis.set(keys.window, "not a list")
    client = RecordingClient(fake_redis)
    with pytest.raises(redis.exceptions.ResponseError) as raised:
        script.run(client, keys, 1)
    assert not isinstance(raised.value, redis.exceptions.NoScriptError)
    assert client.sent == ["EVALSHA"]
