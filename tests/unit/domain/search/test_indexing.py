"""One index pass: lock → read what is not indexed yet → terms and embeddings → commit,
exactly once, and the outcome and retry delay each way of ending asks for."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable

import pytest

from app.domain.memory.stored_format import NewMessage
from app.domain.scheduling.outcome import FinishedRun, Outcome, RunResult, backoff
from app.domain.search import indexing
from app.domain.search.embedder import EmbeddingError
from app.domain.search.indexing import IndexJob, searchable_text
from app.domain.search.store import IndexCommit, SearchStore

from .fakes import OTHER, TENANT, index_state, snapshot


class HookedStore(SearchStore):
    """Runs ``before_commit`` once, between a pass's read and its commit (a pass without
    an embedder has no other moment to interleave with)."""

    before_commit: Callable[[], None] | None = None

    def finish_pass(
        self, tenant_id: str, session_id: str, commit: IndexCommit | None, *, lock_token: str
    ) -> FinishedRun:
        if self.before_commit is not None and commit is not None:
            hook, self.before_commit = self.before_commit, None
            hook()
        return super().finish_pass(tenant_id, session_id, commit, lock_token=lock_token)


def lock_key(keyspace, session_id: str = "s1", tenant_id: str = TENANT) -> str:
    return keyspace.session(tenant_id, session_id).index_lock


def assert_each_message_indexed_once(state) -> None:
    """No (term, message) pair twice, and the statistics match the documents."""
    for term, postings in state.postings.items():
        ids = [mid for mid, _, _ in postings]
        assert len(ids) == len(set(ids)), f"{term!r} has a message twice: {ids}"
    assert state.documents_count == len(state.documents)
    assert state.total_length == sum(int(record.split()[0]) for record in state.documents.values())


# --- done, nothing, exactly once -----------------------------------------------------------------


def test_a_pass_indexes_every_new_message_and_is_done(
    job, seed, embedder, search_store, fake_redis, keyspace
):
    seed("s1", "red apple", "green pear", "apple pie")
    assert job.run(TENANT, "s1")[:2] == (Outcome.DONE, None)
    state = index_state(fake_redis, keyspace, "s1")
    assert state.indexed_ids == [1, 2, 3]
    assert state.postings["apple"] == [(1, 1, 2), (3, 1, 2)]
    assert sorted(state.vectors) == [1, 2, 3]
    assert (state.indexed_to, state.documents_count, state.total_length) == (3, 3, 6)
    assert embedder.calls == [["red apple", "green pear", "apple pie"]], "one call for the batch"
    assert search_store.pending(TENANT, "s1") == 0
    assert not fake_redis.exists(lock_key(keyspace)), "the lock is released"


def test_the_stored_vectors_are_the_embedders_made_unit_length(job, seed, embedder, fake_redis, keyspace):
    embedder.table["apple"] = [3.0, 4.0, 0, 0, 0, 0, 0, 0]
    seed("s1", "apple")
    job.run(TENANT, "s1")
    assert index_state(fake_redis, keyspace, "s1").vectors[1] == pytest.approx([0.6, 0.8, 0, 0, 0, 0, 0, 0])


def test_a_second_pass_finds_nothing_and_writes_nothing(job, seed, embedder, fake_redis):
    seed("s1", "red apple", "green pear")
    job.run(TENANT, "s1")
    before = snapshot(fake_redis)
    assert job.run(TENANT, "s1")[:2] == (Outcome.NOTHING, None)
    assert snapshot(fake_redis) == before
    assert len(embedder.calls) == 1


def test_another_process_finds_nothing_once_the_first_committed(job, make_job, seed, embedder):
    seed("s1", "red apple")
    assert job.run(TENANT, "s1")[0] == Outcome.DONE
    assert make_job().run(TENANT, "s1")[:2] == (Outcome.NOTHING, None)
    assert len(embedder.calls) == 1


def test_the_next_pass_indexes_only_the_messages_added_since(job, seed, embedder, fake_redis, keyspace):
    seed("s1", "apple one", "apple two")
    job.run(TENANT, "s1")
    seed("s1", "apple three")
    assert job.run(TENANT, "s1")[:2] == (Outcome.DONE, None)
    assert embedder.calls[1] == ["apple three"]
    state = index_state(fake_redis, keyspace, "s1")
    assert [mid for mid, _, _ in state.postings["apple"]] == [1, 2, 3]
    assert state.indexed_to == 3


def test_many_interleaved_passes_of_two_processes_index_each_message_exactly_once(
    make_job, seed, fake_redis, keyspace
):
    first, second = make_job(), make_job(embedder=None)
    rng = random.Random(5)
    words = ["apple", "pear", "plum", "fig"]
    for _ in range(12):
        seed("s1", *(" ".join(rng.choices(words, k=3)) for _ in range(rng.randint(0, 3))))
        rng.choice([first, second]).run(TENANT, "s1")
    first.run(TENANT, "s1")
    last_id = int(fake_redis.hget(keyspace.session(TENANT, "s1").meta, "next"))
    state = index_state(fake_redis, keyspace, "s1")
    assert_each_message_indexed_once(state)
    assert last_id > 10
    assert state.indexed_ids == list(range(1, last_id + 1))
    assert state.indexed_to == last_id


def test_a_message_deleted_between_read_and_commit_makes_the_commit_refuse_and_the_next_pass_skips_it(
    job, seed, sessions, embedder, fake_redis, keyspace
):
    seed("s1", "apple", "pear", "plum")
    embedder.during = lambda: sessions.delete_message(TENANT, "s1", 2)
    assert job.run(TENANT, "s1") == RunResult(Outcome.CONFLICT)
    state = index_state(fake_redis, keyspace, "s1")
    assert (state.indexed_to, state.documents, state.postings, state.vectors) == (0, {}, {}, {})
    assert job.run(TENANT, "s1")[:2] == (Outcome.DONE, None)
    state = index_state(fake_redis, keyspace, "s1")
    assert state.indexed_ids == [1, 3]
    assert "pear" not in state.postings and sorted(state.vectors) == [1, 3]
    assert (state.indexed_to, state.documents_count) == (3, 2)
    assert embedder.calls[1] == ["apple", "plum"]


def test_without_embeddings_a_message_deleted_before_the_commit_is_refused_too(
    make_job, seed, sessions, fake_redis, keyspace
):
    store = HookedStore(fake_redis, keyspace)
    job = make_job(embedder=None, store=store)
    seed("s1", "apple", "pear")
    store.before_commit = lambda: sessions.delete_message(TENANT, "s1", 1)
    assert job.run(TENANT, "s1") == RunResult(Outcome.CONFLICT)
    assert index_state(fake_redis, keyspace, "s1").documents == {}
    assert job.run(TENANT, "s1")[:2] == (Outcome.DONE, None)
    assert index_state(fake_redis, keyspace, "s1").indexed_ids == [2]


def test_messages_appended_during_a_pass_wait_for_the_next_one(
    job, seed, embedder, tenants, fake_redis, keyspace
):
    seed("s1", "apple")
    embedder.during = lambda: seed("s1", "pear")
    assert job.run(TENANT, "s1")[:2] == (Outcome.DONE, None)
    assert index_state(fake_redis, keyspace, "s1").indexed_to == 1
    assert job.still_due(tenants(TENANT), "s1")
    assert job.run(TENANT, "s1")[:2] == (Outcome.DONE, None)
    assert index_state(fake_redis, keyspace, "s1").indexed_ids == [1, 2]


# --- locks ---------------------------------------------------------------------------------------


def test_a_pass_while_another_process_holds_the_lock_is_busy_and_writes_nothing(
    job, seed, embedder, fake_redis, keyspace
):
    seed("s1", "apple")
    fake_redis.set(lock_key(keyspace), "another-process")
    before = snapshot(fake_redis)
    assert job.run(TENANT, "s1") == RunResult(Outcome.BUSY)
    assert snapshot(fake_redis) == before, "the other process's lock is left as it was"
    assert embedder.calls == []


def test_a_pass_started_while_one_is_embedding_is_busy_and_then_finds_nothing(
    job, make_job, seed, embedder, fake_redis, keyspace
):
    seed("s1", "apple", "pear")
    other = make_job()
    seen: list[tuple[str, float | None]] = []
    embedder.during = lambda: seen.append(other.run(TENANT, "s1"))
    assert job.run(TENANT, "s1")[:2] == (Outcome.DONE, None)
    assert seen == [RunResult(Outcome.BUSY)]
    assert other.run(TENANT, "s1")[:2] == (Outcome.NOTHING, None)
    assert_each_message_indexed_once(index_state(fake_redis, keyspace, "s1"))


def test_a_pass_whose_lock_lapsed_while_another_indexed_commits_nothing(
    job, make_job, seed, embedder, fake_redis, keyspace
):
    seed("s1", "apple", "pear")
    other = make_job()

    def lock_lapses_and_another_process_indexes() -> None:
        fake_redis.delete(lock_key(keyspace))
        assert other.run(TENANT, "s1")[:2] == (Outcome.DONE, None)

    embedder.during = lock_lapses_and_another_process_indexes
    assert job.run(TENANT, "s1") == RunResult(Outcome.CONFLICT)
    state = index_state(fake_redis, keyspace, "s1")
    assert_each_message_indexed_once(state)
    assert state.postings == {"apple": [(1, 1, 1)], "pear": [(2, 1, 1)]}


def test_a_pass_does_not_release_a_lock_another_process_took_after_its_own_lapsed(
    job, seed, embedder, fake_redis, keyspace
):
    seed("s1", "apple")

    def lock_lapses_and_another_takes_it() -> None:
        fake_redis.set(lock_key(keyspace), "another-process")

    embedder.during = lock_lapses_and_another_takes_it
    assert job.run(TENANT, "s1") == RunResult(Outcome.CONFLICT)
    assert fake_redis.get(lock_key(keyspace)) == b"another-process"
    assert index_state(fake_redis, keyspace, "s1").documents == {}


def test_the_lock_is_held_for_the_configured_time_during_a_pass(job, seed, embedder, fake_redis, keyspace):
    seed("s1", "apple")
    seen: list[int] = []
    embedder.during = lambda: seen.append(fake_redis.pttl(lock_key(keyspace)))
    job.run(TENANT, "s1")
    assert 29_000 < seen[0] <= 30_000


def test_the_lock_is_released_even_when_the_embedder_crashes(job, seed, embedder, fake_redis, keyspace):
    seed("s1", "apple")

    def crash() -> None:
        raise RuntimeError("a bug, not an EmbeddingError")

    embedder.during = crash
    with pytest.raises(RuntimeError):
        job.run(TENANT, "s1")
    assert not fake_redis.exists(lock_key(keyspace))
    assert index_state(fake_redis, keyspace, "s1").indexed_to == 0


# --- gone, nothing ---------------------------------------------------------------------------------


def test_a_session_that_does_not_exist_is_gone_and_no_key_is_left_behind(job, fake_redis, embedder):
    assert job.run(TENANT, "never")[:2] == (Outcome.GONE, None)
    assert fake_redis.keys("*") == []
    assert embedder.calls == []


def test_a_removed_tenant_is_gone_and_nothing_is_written(job, seed, tenants, fake_redis, embedder):
    seed("s1", "apple")
    tenants.remove(TENANT)
    before = snapshot(fake_redis)
    assert job.run(TENANT, "s1")[:2] == (Outcome.GONE, None)
    assert snapshot(fake_redis) == before
    assert embedder.calls == []


def test_long_term_memory_off_is_nothing_and_nothing_is_written(
    job, seed, tenants, make_policy, fake_redis, embedder
):
    seed("s1", "apple")
    tenants.add(TENANT, make_policy(long_term_memory=False))
    before = snapshot(fake_redis)
    assert job.run(TENANT, "s1")[:2] == (Outcome.NOTHING, None)
    assert snapshot(fake_redis) == before
    assert embedder.calls == []
    assert not job.still_due(tenants(TENANT), "s1")


def test_a_session_that_expired_and_was_recreated_during_the_pass_is_gone_and_keeps_nothing_of_the_old(
    job, seed, embedder, fake_redis, keyspace
):
    seed("s1", "old apple")
    keys = keyspace.session(TENANT, "s1")

    def expire_and_recreate() -> None:
        # The session's keys expire (not the index lock, which has its own expiry) and a
        # POST creates it anew: new generation, ids from 1 again.
        fake_redis.delete(keys.window, keys.meta)
        seed("s1", "new pear")

    embedder.during = expire_and_recreate
    assert job.run(TENANT, "s1")[:2] == (Outcome.GONE, None)
    assert index_state(fake_redis, keyspace, "s1").documents == {}
    assert job.run(TENANT, "s1")[:2] == (Outcome.DONE, None)
    state = index_state(fake_redis, keyspace, "s1")
    assert state.documents == {1: "2 new pear"}
    assert "apple" not in state.postings


def test_a_session_deleted_during_the_pass_is_not_brought_back_by_the_commit(
    job, seed, sessions, embedder, fake_redis
):
    seed("s1", "apple")
    embedder.during = lambda: sessions.delete_session(TENANT, "s1")
    # Deleting a session also deletes its index lock, so the commit refuses for the lock.
    assert job.run(TENANT, "s1") == RunResult(Outcome.CONFLICT)
    assert fake_redis.keys("rc:{acme:s1}*") == []
    assert job.run(TENANT, "s1")[:2] == (Outcome.GONE, None)
    assert fake_redis.keys("rc:{acme:s1}*") == []


def test_a_session_deleted_and_recreated_during_the_pass_gets_only_its_own_messages_indexed(
    job, seed, sessions, embedder, fake_redis, keyspace
):
    seed("s1", "old apple")

    def delete_and_recreate() -> None:
        sessions.delete_session(TENANT, "s1")
        seed("s1", "new pear")

    embedder.during = delete_and_recreate
    # The delete took the old pass's lock with it: its commit refuses for the lock (before
    # even looking at the generation), and the runner retries soon.
    assert job.run(TENANT, "s1") == RunResult(Outcome.CONFLICT)
    assert index_state(fake_redis, keyspace, "s1").documents == {}
    assert job.run(TENANT, "s1")[:2] == (Outcome.DONE, None)
    assert index_state(fake_redis, keyspace, "s1").documents == {1: "2 new pear"}


# --- embedding failures --------------------------------------------------------------------------


def test_an_embedding_failure_fails_with_backoff_commits_nothing_and_is_counted_on_the_session(
    job, seed, embedder, timing, fake_redis, keyspace
):
    seed("s1", "apple", "pear")
    embedder.error = EmbeddingError("boom", code="embedding_status")
    expected = random.Random(7)  # the job's jitter
    for failures in (1, 2, 3):
        outcome, delay = job.run(TENANT, "s1")[:2]
        assert outcome == Outcome.FAILED
        assert delay == backoff(failures, None, timing, expected)
        state = index_state(fake_redis, keyspace, "s1")
        assert (state.failures, state.error) == (failures, "embedding_status")
        assert (state.indexed_to, state.documents, state.postings, state.vectors) == (0, {}, {}, {})
    assert not fake_redis.exists(lock_key(keyspace))


def test_the_backoff_grows_exponentially_with_jitter_up_to_the_maximum(job, seed, embedder):
    seed("s1", "apple")
    embedder.error = EmbeddingError("boom")
    delays = [job.run(TENANT, "s1")[1] for _ in range(10)]
    for failures, delay in enumerate(delays, start=1):
        ceiling = min(300.0, 2.0 * 2 ** (failures - 1))
        assert ceiling / 2 <= delay <= ceiling, (failures, delay)


def test_the_servers_retry_after_is_the_shortest_backoff(job, seed, embedder):
    seed("s1", "apple")
    embedder.error = EmbeddingError("slow down", code="embedding_rate_limited", retry_after=100.0)
    assert job.run(TENANT, "s1") == RunResult(Outcome.FAILED, 100.0)


def test_the_next_commit_resets_the_failure_count(job, seed, embedder, fake_redis, keyspace):
    seed("s1", "apple")
    embedder.error = EmbeddingError("boom", code="embedding_timeout")
    job.run(TENANT, "s1")
    job.run(TENANT, "s1")
    assert index_state(fake_redis, keyspace, "s1").failures == 2
    embedder.error = None
    assert job.run(TENANT, "s1")[:2] == (Outcome.DONE, None)
    state = index_state(fake_redis, keyspace, "s1")
    assert (state.failures, state.error, state.indexed_ids) == (0, None, [1])


def test_an_embedding_failure_of_a_session_deleted_meanwhile_is_gone_and_writes_nothing(
    job, seed, sessions, embedder, fake_redis
):
    seed("s1", "apple")
    embedder.during = lambda: sessions.delete_session(TENANT, "s1")
    embedder.error = EmbeddingError("boom")
    assert job.run(TENANT, "s1")[:2] == (Outcome.GONE, None)
    assert fake_redis.keys("rc:{acme:s1}*") == []


def test_a_failed_pass_bills_nothing(job, seed, embedder, usage, observer):
    seed("s1", "apple")
    embedder.error = EmbeddingError("boom")
    job.run(TENANT, "s1")
    assert usage.tokens_spent_today(TENANT) == 0
    assert observer.llm_calls == []


# --- budget ----------------------------------------------------------------------------------------


def test_a_spent_daily_budget_defers_without_embedding_or_writing(
    job, seed, tenants, make_policy, usage, embedder, fake_redis
):
    tenants.add(TENANT, make_policy(summary_token_budget_daily=100))
    seed("s1", "apple")
    usage.record_llm(TENANT, calls=1, prompt_tokens=100, completion_tokens=0)
    before = snapshot(fake_redis)
    outcome, delay = job.run(TENANT, "s1")[:2]
    assert outcome == Outcome.DEFERRED
    assert delay is not None and 0 < delay <= 60.0, "re-checked within budget_recheck"
    assert embedder.calls == []
    assert snapshot(fake_redis) == before


def test_below_the_budget_a_pass_runs_and_bills_its_embedding_tokens(
    job, seed, tenants, make_policy, usage, embedder, observer
):
    tenants.add(TENANT, make_policy(summary_token_budget_daily=100))
    usage.record_llm(TENANT, calls=1, prompt_tokens=99, completion_tokens=0)
    seed("s1", "apple", "pear")
    assert job.run(TENANT, "s1")[:2] == (Outcome.DONE, None)
    assert usage.tokens_spent_today(TENANT) == 99 + 2 * embedder.tokens_per_text
    assert usage.report(TENANT, sessions=1)["llm_calls"]["today"] == 2
    assert observer.llm_calls == [(TENANT, 6, 0)]


def test_other_tenants_spending_does_not_defer_this_one(job, seed, tenants, make_policy, usage):
    tenants.add(TENANT, make_policy(summary_token_budget_daily=100))
    usage.record_llm(OTHER, calls=1, prompt_tokens=1000, completion_tokens=0)
    seed("s1", "apple")
    assert job.run(TENANT, "s1")[:2] == (Outcome.DONE, None)


def test_without_embeddings_a_spent_budget_does_not_stop_keyword_indexing(
    keyword_job, seed, tenants, make_policy, usage, fake_redis, keyspace
):
    tenants.add(TENANT, make_policy(summary_token_budget_daily=100))
    usage.record_llm(TENANT, calls=1, prompt_tokens=500, completion_tokens=0)
    seed("s1", "apple")
    assert keyword_job.run(TENANT, "s1")[:2] == (Outcome.DONE, None)
    state = index_state(fake_redis, keyspace, "s1")
    assert (state.indexed_ids, state.vectors) == ([1], {})
    assert usage.tokens_spent_today(TENANT) == 500


def test_messages_without_text_need_no_embedding_and_so_no_budget(
    job, seed, tenants, make_policy, usage, embedder, fake_redis, keyspace
):
    tenants.add(TENANT, make_policy(summary_token_budget_daily=100))
    usage.record_llm(TENANT, calls=1, prompt_tokens=100, completion_tokens=0)
    seed("s1", "", "   \n")
    assert job.run(TENANT, "s1")[:2] == (Outcome.DONE, None)
    assert embedder.calls == []
    state = index_state(fake_redis, keyspace, "s1")
    assert (state.documents, state.vectors, state.documents_count) == ({1: "0", 2: "0"}, {}, 2)


def test_only_messages_with_text_are_embedded_and_get_a_vector(job, seed, embedder, fake_redis, keyspace):
    seed("s1", "apple", "", "the of", "pear")
    job.run(TENANT, "s1")
    assert embedder.calls == [["apple", "the of", "pear"]], "stopwords are still text to embed"
    state = index_state(fake_redis, keyspace, "s1")
    assert sorted(state.vectors) == [1, 3, 4]
    assert state.documents == {1: "1 apple", 2: "0", 3: "0", 4: "1 pear"}


# --- batches ---------------------------------------------------------------------------------------


def test_a_pass_indexes_at_most_a_batch_and_the_watermark_stops_at_the_last_one_read(
    job, seed, embedder, search_store, fake_redis, keyspace, monkeypatch
):
    monkeypatch.setattr(indexing, "BATCH", 3)
    seed("s1", *(f"word{i}" for i in range(1, 8)))
    progress = []
    for _ in range(4):
        outcome = job.run(TENANT, "s1")
        progress.append((outcome[0], index_state(fake_redis, keyspace, "s1").indexed_to))
    assert progress == [
        (Outcome.DONE, 3),
        (Outcome.DONE, 6),
        (Outcome.DONE, 7),
        (Outcome.NOTHING, 7),
    ]
    assert [len(call) for call in embedder.calls] == [3, 3, 1]
    assert index_state(fake_redis, keyspace, "s1").indexed_ids == list(range(1, 8))
    assert search_store.pending(TENANT, "s1") == 0


def test_still_due_while_a_batch_left_messages_pending(job, seed, tenants, monkeypatch):
    monkeypatch.setattr(indexing, "BATCH", 2)
    seed("s1", "a1", "a2", "a3")
    principal = tenants(TENANT)
    assert job.still_due(principal, "s1")
    job.run(TENANT, "s1")
    assert job.still_due(principal, "s1")
    job.run(TENANT, "s1")
    assert not job.still_due(principal, "s1")


def test_a_full_batch_whose_tail_was_deleted_advances_only_to_the_last_message_read(
    job, seed, sessions, fake_redis, keyspace, monkeypatch
):
    monkeypatch.setattr(indexing, "BATCH", 3)
    seed("s1", "a1", "a2", "a3", "a4", "a5")
    sessions.delete_message(TENANT, "s1", 4)
    sessions.delete_message(TENANT, "s1", 5)
    assert job.run(TENANT, "s1")[:2] == (Outcome.DONE, None)
    assert index_state(fake_redis, keyspace, "s1").indexed_to == 3
    assert job.run(TENANT, "s1")[:2] == (Outcome.DONE, None)
    assert index_state(fake_redis, keyspace, "s1").indexed_to == 5
    assert job.run(TENANT, "s1")[:2] == (Outcome.NOTHING, None)
    assert index_state(fake_redis, keyspace, "s1").indexed_ids == [1, 2, 3]


def test_a_batch_spans_the_archive_and_the_window(job, seed, archive, embedder, monkeypatch):
    monkeypatch.setattr(indexing, "BATCH", 3)
    seed("s1", "a1", "a2", "a3", "a4", "a5")
    archive("s1", 2)
    job.run(TENANT, "s1")
    job.run(TENANT, "s1")
    assert embedder.calls == [["a1", "a2", "a3"], ["a4", "a5"]]


def test_the_shipped_batch_is_256_messages(keyword_job, sessions, search_store, fake_redis, keyspace):
    assert indexing.BATCH == 256
    sessions.append(TENANT, "s1", [NewMessage("Human", f"m{i}", None, 1) for i in range(260)], indexed=True)
    keyword_job.run(TENANT, "s1")
    assert index_state(fake_redis, keyspace, "s1").indexed_to == 256
    assert search_store.pending(TENANT, "s1") == 4
    keyword_job.run(TENANT, "s1")
    assert index_state(fake_redis, keyspace, "s1").documents_count == 260


# --- archived messages ---------------------------------------------------------------------------


def test_archived_messages_are_indexed(job, seed, archive, fake_redis, keyspace):
    seed("s1", "apple", "pear", "plum", "fig")
    archive("s1", 3)
    assert job.run(TENANT, "s1")[:2] == (Outcome.DONE, None)
    state = index_state(fake_redis, keyspace, "s1")
    assert state.indexed_ids == [1, 2, 3, 4]
    assert sorted(state.vectors) == [1, 2, 3, 4]


def test_messages_folded_into_the_archive_during_a_pass_are_still_committed(
    job, seed, archive, embedder, fake_redis, keyspace
):
    seed("s1", "apple", "pear", "plum")
    embedder.during = lambda: archive("s1", 2)
    assert job.run(TENANT, "s1")[:2] == (Outcome.DONE, None)
    assert index_state(fake_redis, keyspace, "s1").indexed_ids == [1, 2, 3]


# --- what a message is found by --------------------------------------------------------------------


def test_the_searchable_text_is_the_content_and_each_tool_calls_name_and_arguments():
    message = {
        "content": "checking",
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            },
            {"id": "c2", "type": "function", "function": {"name": "get_time"}},
        ],
    }
    assert searchable_text(message) == 'checking\nget_weather\n{"city":"Paris"}\nget_time'


def test_the_searchable_text_of_a_message_without_content_or_tool_calls_is_empty():
    assert searchable_text({"content": None}) == ""
    assert searchable_text({"content": "", "tool_calls": None}) == ""
    assert searchable_text({"tool_calls": [{"function": None}, {}]}) == ""


def test_tool_calls_are_indexed_by_function_name_and_arguments(job, sessions, embedder, fake_redis, keyspace):
    call = {
        "id": "c1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
    }
    sessions.append(TENANT, "s1", [NewMessage("AI", "", None, 5, tool_calls=[call])], indexed=True)
    job.run(TENANT, "s1")
    assert index_state(fake_redis, keyspace, "s1").documents == {1: "3 get_weather city paris"}
    assert embedder.calls == [['get_weather\n{"city":"Paris"}']]


# --- the job's other duties ------------------------------------------------------------------------


def test_still_due_only_with_long_term_memory_and_ids_pending(job, seed, tenants, make_policy):
    assert not job.still_due(tenants(TENANT), "s1")
    seed("s1", "apple")
    assert job.still_due(tenants(TENANT), "s1")
    job.run(TENANT, "s1")
    assert not job.still_due(tenants(TENANT), "s1")


def test_closing_the_job_closes_its_embedder_and_without_one_does_nothing(job, keyword_job, embedder):
    job.close()
    keyword_job.close()
    assert embedder.closed == 1


def test_a_job_needs_no_observer_or_rng(search_store, tenants, usage, embedder, timing, seed):
    seed("s1", "apple")
    plain = IndexJob(search_store, tenants, usage, embedder, timing)
    assert plain.run(TENANT, "s1")[:2] == (Outcome.DONE, None)


def test_sessions_of_other_tenants_with_the_same_id_are_indexed_separately(job, seed, fake_redis, keyspace):
    seed("s1", "apple")
    seed("s1", "pear", "plum", tenant_id=OTHER)
    job.run(TENANT, "s1")
    assert index_state(fake_redis, keyspace, "s1", tenant_id=OTHER).documents == {}
    assert job.run(OTHER, "s1")[:2] == (Outcome.DONE, None)
    assert index_state(fake_redis, keyspace, "s1").documents == {1: "1 apple"}
    assert index_state(fake_redis, keyspace, "s1", tenant_id=OTHER).documents == {1: "1 pear", 2: "1 plum"}


def test_messages_counted_once_in_the_statistics_across_batches_and_deletes(
    job, seed, sessions, fake_redis, keyspace, monkeypatch
):
    monkeypatch.setattr(indexing, "BATCH", 2)
    seed("s1", "a b", "c d e", "f", "g h")
    job.run(TENANT, "s1")
    sessions.delete_message(TENANT, "s1", 1)
    job.run(TENANT, "s1")
    state = index_state(fake_redis, keyspace, "s1")
    assert state.indexed_ids == [2, 3, 4]
    assert (state.documents_count, state.total_length) == (3, 6)
    assert Counter(mid for postings in state.postings.values() for mid, _, _ in postings) == Counter(
        {2: 3, 3: 1, 4: 2}
    )
