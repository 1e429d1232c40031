"""The search store over fakeredis: the index lock, reading what is not indexed yet, the
commit's checks and writes, reading postings, vectors and messages back, and what
deleting a message or a session does to the index."""

from __future__ import annotations

import fakeredis
import orjson
import pytest

from app.domain.errors import StoreUnavailable
from app.domain.memory.stored_format import api_message, message_id
from app.domain.search.keyword import SessionPostings, pack_posting
from app.domain.search.store import IndexCommit, IndexedDocument, SearchStore, Unindexed
from app.domain.search.terms import term_frequencies
from app.domain.search.vectors import pack_vector

from .fakes import OTHER, TENANT, index_state, snapshot

TOKEN = "index-token"


def begin(
    store: SearchStore,
    session_id: str = "s1",
    *,
    tenant_id: str = TENANT,
    token: str = TOKEN,
    most: int = 1000,
) -> Unindexed:
    """Begin an index pass: the lock is ``token``'s until its commit (or ``unlock``)."""
    batch = store.begin_pass(tenant_id, session_id, lock_token=token, lock_seconds=30, most=most)
    assert batch is not None, "the index lock is held by someone else"
    return batch


def read_unindexed(
    store: SearchStore, session_id: str = "s1", *, most: int, tenant_id: str = TENANT
) -> Unindexed:
    """What a pass would read now (its lock taken and released again)."""
    batch = begin(store, session_id, tenant_id=tenant_id, token="reader", most=most)
    store.unlock(tenant_id, session_id, "reader")
    return batch


def commit_for(
    store: SearchStore,
    session_id: str = "s1",
    *,
    tenant_id: str = TENANT,
    vectors: dict[int, list[float]] | None = None,
) -> IndexCommit:
    """The commit an index pass would make of everything unindexed, read now."""
    batch = read_unindexed(store, session_id, tenant_id=tenant_id, most=1000)
    documents, postings = [], {}
    for raw in batch.elements:
        message = orjson.loads(api_message(raw))
        length, frequencies = term_frequencies(message["content"])
        for term, frequency in frequencies.items():
            postings[term] = postings.get(term, b"") + pack_posting(message["id"], frequency, length)
        vector = pack_vector(vectors[message["id"]]) if vectors and message["id"] in vectors else b""
        documents.append(IndexedDocument(message["id"], " ".join([str(length), *frequencies]), vector))
    return IndexCommit(batch.gen or "", batch.indexed_to, batch.last_id, documents, postings)


def finish(
    store: SearchStore, index_commit: IndexCommit, session_id: str = "s1", *, token: str = TOKEN
) -> str:
    """The status of finishing a pass with this commit."""
    return store.finish_pass(TENANT, session_id, index_commit, lock_token=token).status


def index_all(store: SearchStore, session_id: str = "s1", *, tenant_id: str = TENANT, **kwargs) -> None:
    index_commit = commit_for(store, session_id, tenant_id=tenant_id, **kwargs)
    begin(store, session_id, tenant_id=tenant_id)
    assert store.finish_pass(tenant_id, session_id, index_commit, lock_token=TOKEN).status == "ok"


# --- the index lock: taken by begin_pass, released by finish_pass (or unlock) --------------------


def test_the_index_lock_is_taken_by_one_holder_at_a_time_and_expires(
    search_store, seed, fake_redis, keyspace
):
    seed("s1", "a")
    begin(search_store, token="first")
    assert search_store.begin_pass(TENANT, "s1", lock_token="second", lock_seconds=30, most=10) is None
    key = keyspace.session(TENANT, "s1").index_lock
    assert fake_redis.get(key) == b"first"
    assert 29_000 < fake_redis.pttl(key) <= 30_000


def test_unlock_releases_only_the_holders_own_lock(search_store, seed, fake_redis, keyspace):
    seed("s1", "a")
    begin(search_store, token="first")
    search_store.unlock(TENANT, "s1", "someone-else")
    assert fake_redis.get(keyspace.session(TENANT, "s1").index_lock) == b"first"
    search_store.unlock(TENANT, "s1", "first")
    assert not fake_redis.exists(keyspace.session(TENANT, "s1").index_lock)
    begin(search_store, token="second")


def test_the_index_lock_is_not_the_fold_lock(search_store, seed, fake_redis, keyspace):
    seed("s1", "a")
    fake_redis.set(keyspace.session(TENANT, "s1").lock, "a-fold")
    begin(search_store)


def test_beginning_a_pass_of_a_session_that_does_not_exist_keeps_no_lock(search_store, fake_redis, keyspace):
    batch = begin(search_store, "nope")
    assert batch.gen is None
    assert not fake_redis.exists(keyspace.session(TENANT, "nope").index_lock)


def test_finishing_a_pass_releases_its_own_lock_committed_or_not(search_store, seed, fake_redis, keyspace):
    seed("s1", "a")
    index_commit = commit_for(search_store)
    begin(search_store)
    assert finish(search_store, index_commit) == "ok"
    assert not fake_redis.exists(keyspace.session(TENANT, "s1").index_lock)
    begin(search_store)
    assert search_store.finish_pass(TENANT, "s1", None, lock_token=TOKEN).status == "released"
    assert not fake_redis.exists(keyspace.session(TENANT, "s1").index_lock)
    begin(search_store, token="someone-else")
    assert search_store.finish_pass(TENANT, "s1", None, lock_token=TOKEN).status == "released"
    assert fake_redis.get(keyspace.session(TENANT, "s1").index_lock) == b"someone-else"


# --- finishing a pass: the re-check and the due mark ---------------------------------------------


def test_on_a_single_node_a_finished_pass_drops_its_due_mark_when_nothing_is_pending(
    search_store, seed, fake_redis, keyspace
):
    seed("s1", "a", "b")
    member = keyspace.due_member(TENANT, "s1")
    fake_redis.zadd(keyspace.index_due, {member: 10**10})  # this pass's lease
    index_commit = commit_for(search_store)
    begin(search_store)
    finished = search_store.finish_pass(TENANT, "s1", index_commit, lock_token=TOKEN)
    assert (finished.status, finished.more_due, finished.settled) == ("ok", False, True)
    assert fake_redis.zscore(keyspace.index_due, member) is None


def test_messages_given_during_a_pass_leave_the_session_due_now(search_store, seed, fake_redis, keyspace):
    seed("s1", "a", "b")
    member = keyspace.due_member(TENANT, "s1")
    fake_redis.zadd(keyspace.index_due, {member: 10**10})
    index_commit = commit_for(search_store)
    begin(search_store)
    seed("s1", "c")  # its NX mark cannot move the lease
    finished = search_store.finish_pass(TENANT, "s1", index_commit, lock_token=TOKEN)
    assert (finished.status, finished.more_due, finished.settled) == ("ok", True, True)
    assert fake_redis.zscore(keyspace.index_due, member) < 10**10, "due now, not at the lease's end"


def test_a_refused_commit_leaves_the_due_mark_to_the_runner(
    search_store, sessions, seed, fake_redis, keyspace
):
    seed("s1", "a", "b")
    member = keyspace.due_member(TENANT, "s1")
    fake_redis.zadd(keyspace.index_due, {member: 10**10})
    index_commit = commit_for(search_store)
    begin(search_store)
    sessions.delete_message(TENANT, "s1", 2)
    finished = search_store.finish_pass(TENANT, "s1", index_commit, lock_token=TOKEN)
    assert (finished.status, finished.settled) == ("changed", False)
    assert fake_redis.zscore(keyspace.index_due, member) == 10**10


# --- reading what is not indexed yet -------------------------------------------------------------


def test_a_session_that_does_not_exist_has_no_generation_and_nothing_to_index(search_store):
    batch = read_unindexed(search_store, "nope", most=10)
    assert (batch.gen, batch.indexed_to, batch.last_id, batch.elements) == (None, 0, 0, [])


def test_a_new_session_has_every_message_unindexed_oldest_first(search_store, seed, fake_redis, keyspace):
    seed("s1", "one", "two", "three")
    batch = read_unindexed(search_store, "s1", most=10)
    assert batch.gen == fake_redis.hget(keyspace.session(TENANT, "s1").meta, "gen").decode()
    assert (batch.indexed_to, batch.last_id) == (0, 3)
    assert [message_id(e) for e in batch.elements] == [1, 2, 3]
    assert orjson.loads(api_message(batch.elements[0]))["content"] == "one"


def test_at_most_the_asked_number_of_messages_are_read(search_store, seed):
    seed("s1", "a", "b", "c", "d")
    batch = read_unindexed(search_store, "s1", most=2)
    assert [message_id(e) for e in batch.elements] == [1, 2]
    assert batch.last_id == 4, "the last id given is reported even when not read"


def test_only_messages_above_the_watermark_are_read(search_store, seed):
    seed("s1", "a", "b")
    index_all(search_store)
    seed("s1", "c", "d")
    batch = read_unindexed(search_store, "s1", most=10)
    assert (batch.indexed_to, batch.last_id) == (2, 4)
    assert [message_id(e) for e in batch.elements] == [3, 4]


def test_archived_messages_are_read_before_the_window_and_count_against_the_limit(
    search_store, seed, archive
):
    seed("s1", "a", "b", "c", "d", "e")
    archive("s1", 3)
    assert [message_id(e) for e in read_unindexed(search_store, "s1", most=10).elements] == [1, 2, 3, 4, 5]
    assert [message_id(e) for e in read_unindexed(search_store, "s1", most=2).elements] == [1, 2]
    assert [message_id(e) for e in read_unindexed(search_store, "s1", most=4).elements] == [1, 2, 3, 4]


def test_archived_messages_below_the_watermark_are_not_read_again(search_store, seed, archive):
    seed("s1", "a", "b", "c")
    index_all(search_store)
    seed("s1", "d")
    archive("s1", 3)
    assert [message_id(e) for e in read_unindexed(search_store, "s1", most=10).elements] == [4]


def test_deleted_messages_are_not_read_but_their_ids_stay_pending(search_store, sessions, seed):
    seed("s1", "a", "b", "c")
    sessions.delete_message(TENANT, "s1", 3)
    batch = read_unindexed(search_store, "s1", most=10)
    assert [message_id(e) for e in batch.elements] == [1, 2]
    assert batch.last_id == 3
    assert search_store.pending(TENANT, "s1") == 3


def test_pending_is_ids_given_minus_ids_indexed(search_store, seed):
    assert search_store.pending(TENANT, "nope") == 0
    seed("s1", "a", "b", "c")
    assert search_store.pending(TENANT, "s1") == 3
    index_all(search_store)
    assert search_store.pending(TENANT, "s1") == 0
    seed("s1", "d")
    assert search_store.pending(TENANT, "s1") == 1


# --- failures ------------------------------------------------------------------------------------


def test_failures_are_counted_on_the_session_with_the_last_error_code(
    search_store, seed, fake_redis, keyspace
):
    seed("s1", "a")
    gen = read_unindexed(search_store, "s1", most=1).gen
    assert search_store.note_failure(TENANT, "s1", gen=gen, code="embedding_status") == 1
    assert search_store.note_failure(TENANT, "s1", gen=gen, code="embedding_timeout") == 2
    state = index_state(fake_redis, keyspace, "s1")
    assert (state.failures, state.error) == (2, "embedding_timeout")


def test_a_failure_of_a_session_deleted_or_recreated_is_not_counted(search_store, sessions, seed, fake_redis):
    seed("s1", "a")
    gen = read_unindexed(search_store, "s1", most=1).gen
    assert search_store.note_failure(TENANT, "s1", gen="another-generation", code="x") is None
    sessions.delete_session(TENANT, "s1")
    before = snapshot(fake_redis)
    assert search_store.note_failure(TENANT, "s1", gen=gen, code="x") is None
    assert snapshot(fake_redis) == before, "a gone session is not brought back by a failure"


# --- committing ----------------------------------------------------------------------------------


def test_a_commit_writes_documents_postings_vectors_statistics_and_the_watermark(
    search_store, seed, fake_redis, keyspace
):
    seed("s1", "red apple", "green apple apple pie", "the")
    commit = commit_for(search_store, vectors={1: [1.0, 0.0], 2: [0.0, 2.0]})
    begin(search_store)
    assert finish(search_store, commit) == "ok"
    state = index_state(fake_redis, keyspace, "s1")
    assert state.documents == {1: "2 red apple", 2: "4 green apple pie", 3: "0"}
    assert state.postings == {
        "red": [(1, 1, 2)],
        "apple": [(1, 1, 2), (2, 2, 4)],
        "green": [(2, 1, 4)],
        "pie": [(2, 1, 4)],
    }
    assert state.vectors == {1: [1.0, 0.0], 2: [0.0, 1.0]}, "stored unit length; none for message 3"
    assert (state.indexed_to, state.documents_count, state.total_length) == (3, 3, 6)


def test_a_later_commit_appends_to_the_postings_and_adds_to_the_statistics(
    search_store, seed, fake_redis, keyspace
):
    seed("s1", "apple pie")
    index_all(search_store)
    seed("s1", "apple tart tart")
    index_all(search_store)
    state = index_state(fake_redis, keyspace, "s1")
    assert state.postings["apple"] == [(1, 1, 2), (2, 1, 3)]
    assert state.postings["tart"] == [(2, 2, 3)]
    assert (state.indexed_to, state.documents_count, state.total_length) == (2, 2, 5)


def test_a_commit_clears_the_failure_count_and_error(search_store, seed, fake_redis, keyspace):
    seed("s1", "a")
    gen = read_unindexed(search_store, "s1", most=1).gen
    search_store.note_failure(TENANT, "s1", gen=gen, code="embedding_status")
    index_all(search_store)
    state = index_state(fake_redis, keyspace, "s1")
    assert (state.failures, state.error) == (0, None)


def test_a_commit_of_no_documents_only_moves_the_watermark(
    search_store, sessions, seed, fake_redis, keyspace
):
    seed("s1", "apple", "pear")
    sessions.delete_message(TENANT, "s1", 1)
    sessions.delete_message(TENANT, "s1", 2)
    index_all(search_store)
    state = index_state(fake_redis, keyspace, "s1")
    assert (state.indexed_to, state.documents_count, state.documents, state.postings) == (2, 0, {}, {})


def test_a_commit_accepts_messages_folded_into_the_archive_since_they_were_read(
    search_store, seed, archive, fake_redis, keyspace
):
    seed("s1", "apple", "pear", "plum")
    commit = commit_for(search_store)
    begin(search_store)
    archive("s1", 2)
    assert finish(search_store, commit) == "ok"
    assert index_state(fake_redis, keyspace, "s1").indexed_ids == [1, 2, 3]


@pytest.mark.parametrize("holder", [None, "another-token"])
def test_a_commit_without_the_lock_refuses_lock_and_writes_nothing(search_store, seed, fake_redis, holder):
    seed("s1", "apple")
    commit = commit_for(search_store)
    if holder is not None:
        begin(search_store, token=holder)
    before = snapshot(fake_redis)
    assert finish(search_store, commit) == "lock"
    assert snapshot(fake_redis) == before


def session_data(fake_redis, keyspace) -> dict[bytes, object]:
    """Every key but the pass's lock and the due sets, which finishing a pass settles."""
    kept = snapshot(fake_redis)
    for key in (keyspace.session(TENANT, "s1").index_lock, keyspace.index_due, keyspace.due):
        kept.pop(key.encode(), None)
    return kept


def test_a_commit_for_another_generation_refuses_gone_and_writes_nothing(
    search_store, seed, fake_redis, keyspace
):
    seed("s1", "apple")
    commit = commit_for(search_store)
    begin(search_store)
    fake_redis.hset(keyspace.session(TENANT, "s1").meta, "gen", "recreated")
    before = session_data(fake_redis, keyspace)
    assert finish(search_store, commit) == "gone"
    assert session_data(fake_redis, keyspace) == before
    assert not fake_redis.exists(keyspace.session(TENANT, "s1").index_lock)


def test_a_commit_after_someone_else_indexed_refuses_moved_and_writes_nothing(
    search_store, seed, fake_redis, keyspace
):
    seed("s1", "apple")
    stale, first = commit_for(search_store), commit_for(search_store)
    begin(search_store)
    assert finish(search_store, first) == "ok"
    begin(search_store)
    before = session_data(fake_redis, keyspace)
    assert finish(search_store, stale) == "moved"
    assert session_data(fake_redis, keyspace) == before


def test_a_commit_naming_a_message_deleted_since_it_was_read_refuses_changed_and_writes_nothing(
    search_store, sessions, seed, fake_redis, keyspace
):
    seed("s1", "apple", "pear", "plum")
    commit = commit_for(search_store)
    begin(search_store)
    sessions.delete_message(TENANT, "s1", 2)
    before = session_data(fake_redis, keyspace)
    assert finish(search_store, commit) == "changed"
    assert session_data(fake_redis, keyspace) == before


def test_the_index_keys_take_the_sessions_ttl(search_store, sessions, fake_redis, keyspace):
    from app.domain.memory.stored_format import NewMessage

    sessions.append(TENANT, "s1", [NewMessage("Human", "apple", None, 1)], ttl_seconds=600, indexed=True)
    index_all(search_store, vectors={1: [1.0]})
    keys = keyspace.session(TENANT, "s1")
    for key in (keys.postings, keys.documents, keys.vectors):
        assert 590 < fake_redis.ttl(key) <= 600, key


def test_without_a_session_ttl_the_index_keys_do_not_expire(search_store, seed, fake_redis, keyspace):
    seed("s1", "apple")
    index_all(search_store, vectors={1: [1.0]})
    keys = keyspace.session(TENANT, "s1")
    for key in (keys.postings, keys.documents, keys.vectors):
        assert fake_redis.ttl(key) == -1, key


# --- reading the index back ----------------------------------------------------------------------


def test_postings_are_read_per_session_in_the_given_order_with_their_statistics(search_store, seed):
    seed("s1", "apple pie", "pear")
    seed("s2", "apple apple")
    index_all(search_store, "s1")
    index_all(search_store, "s2")
    found = search_store.postings(TENANT, ["s2", "missing", "s1"], ["apple", "kiwi"])
    assert found == [
        SessionPostings(1, 2, [pack_posting(1, 2, 2), b""]),
        SessionPostings(0, 0, [b"", b""]),
        SessionPostings(2, 3, [pack_posting(1, 1, 2), b""]),
    ]


def test_vectors_and_their_counts_are_read_per_session(search_store, seed):
    seed("s1", "a", "b")
    seed("s2", "c")
    index_all(search_store, "s1", vectors={1: [1.0, 0.0], 2: [0.0, 1.0]})
    index_all(search_store, "s2")
    assert search_store.vector_counts(TENANT, ["s1", "s2", "missing"]) == [2, 0, 0]
    s1, s2 = search_store.vectors(TENANT, ["s1", "s2"])
    assert s1 == {1: pack_vector([1.0, 0.0]), 2: pack_vector([0.0, 1.0])}
    assert s2 == {}


def test_messages_are_found_in_the_window_or_the_archive_in_the_apis_form(search_store, seed, archive):
    seed("s1", "old", "new")
    seed("s2", "other")
    archive("s1", 1)
    found = search_store.messages(TENANT, [("s1", 1), ("s1", 2), ("s2", 1), ("s2", 9), ("missing", 1)])
    assert set(found) == {("s1", 1), ("s1", 2), ("s2", 1)}
    assert orjson.loads(found[("s1", 1)])["content"] == "old"
    assert orjson.loads(found[("s1", 2)])["content"] == "new"
    assert orjson.loads(found[("s2", 1)]) == {
        "id": 1,
        "role": "Human",
        "content": "other",
        "created_at": orjson.loads(found[("s2", 1)])["created_at"],
        "token_count": 10,
    }


def test_reading_nothing_answers_empty(search_store):
    assert search_store.messages(TENANT, []) == {}
    assert search_store.postings(TENANT, [], ["apple"]) == []
    assert search_store.vectors(TENANT, []) == []


# --- deleting messages and sessions --------------------------------------------------------------


def test_deleting_an_indexed_message_removes_its_postings_document_vector_and_statistics(
    search_store, sessions, seed, fake_redis, keyspace
):
    seed("s1", "apple pie", "apple tart tart", "pear")
    index_all(search_store, vectors={1: [1.0], 2: [1.0], 3: [1.0]})
    assert sessions.delete_message(TENANT, "s1", 2)
    state = index_state(fake_redis, keyspace, "s1")
    assert state.documents == {1: "2 apple pie", 3: "1 pear"}
    assert state.postings == {"apple": [(1, 1, 2)], "pie": [(1, 1, 2)], "pear": [(3, 1, 1)]}
    assert "tart" not in state.postings, "a term left without postings is removed"
    assert sorted(state.vectors) == [1, 3]
    assert (state.documents_count, state.total_length, state.indexed_to) == (2, 3, 3)


def test_deleting_an_archived_indexed_message_unindexes_it_too(
    search_store, sessions, seed, archive, fake_redis, keyspace
):
    seed("s1", "apple", "pear", "plum")
    archive("s1", 2)
    index_all(search_store, vectors={1: [1.0], 2: [1.0]})
    assert sessions.delete_message(TENANT, "s1", 1)
    state = index_state(fake_redis, keyspace, "s1")
    assert "apple" not in state.postings
    assert sorted(state.documents) == [2, 3]
    assert sorted(state.vectors) == [2]
    assert (state.documents_count, state.total_length) == (2, 2)


def test_deleting_a_message_not_indexed_yet_leaves_the_index_alone(
    search_store, sessions, seed, fake_redis, keyspace
):
    seed("s1", "apple")
    index_all(search_store)
    seed("s1", "apple pear")
    before = index_state(fake_redis, keyspace, "s1")
    assert sessions.delete_message(TENANT, "s1", 2)
    assert index_state(fake_redis, keyspace, "s1") == before


def test_deleting_removes_only_the_postings_that_start_with_the_messages_id(
    search_store, sessions, seed, fake_redis, keyspace
):
    # Message 1's posting holds the bytes of id 2 as its frequency and its length:
    # (1, 2, 2) must survive deleting message 2.
    seed("s1", "kiwi kiwi", "kiwi fig")
    index_all(search_store)
    assert sessions.delete_message(TENANT, "s1", 2)
    assert index_state(fake_redis, keyspace, "s1").postings == {"kiwi": [(1, 2, 2)]}


def test_deleting_a_message_with_non_ascii_terms_removes_their_postings(
    search_store, sessions, seed, fake_redis, keyspace
):
    # UTF-8 bytes 0xA0 ("à") and 0x85 ("ą") are spaces in Latin-1: the record must still
    # split into these terms, not pieces of them.
    seed("s1", "voilà mąka 東京", "mąka")
    index_all(search_store)
    assert index_state(fake_redis, keyspace, "s1").documents[1] == "3 voilà mąka 東京"
    assert sessions.delete_message(TENANT, "s1", 1)
    state = index_state(fake_redis, keyspace, "s1")
    assert state.postings == {"mąka": [(2, 1, 1)]}
    assert (state.documents_count, state.total_length) == (1, 1)


def test_deleting_a_message_leaves_the_same_id_of_other_sessions_and_tenants_indexed(
    search_store, sessions, seed, fake_redis, keyspace
):
    for tenant_id, session_id in ((TENANT, "s1"), (TENANT, "s2"), (OTHER, "s1")):
        seed(session_id, "apple", tenant_id=tenant_id)
        index_all(search_store, session_id, tenant_id=tenant_id)
    assert sessions.delete_message(TENANT, "s1", 1)
    assert index_state(fake_redis, keyspace, "s1").documents == {}
    assert index_state(fake_redis, keyspace, "s2").documents == {1: "1 apple"}
    assert index_state(fake_redis, keyspace, "s1", tenant_id=OTHER).documents == {1: "1 apple"}


def test_deleting_a_session_erases_its_index(search_store, sessions, seed, fake_redis, keyspace):
    seed("s1", "apple")
    index_all(search_store, vectors={1: [1.0]})
    begin(search_store, token="held")
    sessions.delete_session(TENANT, "s1")
    keys = keyspace.session(TENANT, "s1")
    for key in (keys.postings, keys.documents, keys.vectors, keys.index_lock, keys.meta):
        assert not fake_redis.exists(key), key


# --- outages -------------------------------------------------------------------------------------


def test_every_store_operation_raises_store_unavailable_when_redis_is_down(keyspace):
    server = fakeredis.FakeServer()
    server.connected = False
    store = SearchStore(fakeredis.FakeRedis(server=server), keyspace)
    index_commit = IndexCommit("g", 0, 1, [IndexedDocument(1, "1 a", b"")], {"a": pack_posting(1, 1, 1)})
    calls = [
        lambda: store.begin_pass(TENANT, "s1", lock_token=TOKEN, lock_seconds=1, most=1),
        lambda: store.unlock(TENANT, "s1", TOKEN),
        lambda: store.note_failure(TENANT, "s1", gen="g", code="c"),
        lambda: store.pending(TENANT, "s1"),
        lambda: store.finish_pass(TENANT, "s1", index_commit, lock_token=TOKEN),
        lambda: store.postings(TENANT, ["s1"], ["a"]),
        lambda: store.vector_counts(TENANT, ["s1"]),
        lambda: store.vectors(TENANT, ["s1"]),
        lambda: store.messages(TENANT, [("s1", 1)]),
    ]
    for call in calls:
        with pytest.raises(StoreUnavailable):
            call()
