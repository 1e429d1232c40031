"""The search service: one session's retrieval and the tenant-wide search, in each mode,
with its errors, tenant isolation, awkward session ids and the metadata filter."""

from __future__ import annotations

import math

import pytest

from app.domain.errors import EmbeddingsUnavailable, InvalidRequest
from app.domain.folding.scripts import FoldCommit
from app.domain.memory.stored_format import NewMessage
from app.domain.scheduling.outcome import Outcome
from app.domain.search.embedder import EmbeddingError
from app.domain.search.keyword import keyword_distance
from app.domain.search.service import Hit

from .fakes import DIMS, OTHER, TENANT


def vec(*values: float) -> list[float]:
    return [*values, *[0.0] * (DIMS - len(values))]


@pytest.fixture
def index(job):
    """Index sessions completely (every pass until there is nothing left)."""

    def index(*session_ids: str, tenant_id: str = TENANT) -> None:
        for session_id in session_ids:
            for _ in range(10):
                if job.run(tenant_id, session_id)[0] == Outcome.NOTHING:
                    break

    return index


@pytest.fixture
def service(make_service):
    """With embeddings configured."""
    return make_service()


@pytest.fixture
def keyword_service(make_service):
    """Without embeddings."""
    return make_service(embedder=None)


@pytest.fixture
def principal(tenants):
    return tenants(TENANT)


def contents(hits: list[Hit]) -> list[str]:
    return [hit.message["content"] for hit in hits]


def where(hits: list[Hit]) -> list[tuple[str, int]]:
    return [(hit.session_id, hit.message["id"]) for hit in hits]


# --- keyword -------------------------------------------------------------------------------------


def test_keyword_retrieval_returns_the_matching_messages_best_first_in_the_apis_form(
    keyword_service, principal, seed, index
):
    seed("s1", "apple pie recipe", "pear", "apple", metadata={"lang": "en"})
    index("s1")
    hits = keyword_service.retrieve(principal, "s1", "apple", k=10, mode="keyword")
    assert where(hits) == [("s1", 3), ("s1", 1)]
    first = hits[0].message
    assert first == {
        "id": 3,
        "role": "Human",
        "content": "apple",
        "created_at": first["created_at"],
        "token_count": 10,
        "metadata": {"lang": "en"},
    }


def test_the_keyword_distance_is_one_over_one_plus_the_bm25_score(keyword_service, principal, seed, index):
    # Three documents of one term each, "kiwi" in one: the score is its idf, ln(8/3).
    seed("s1", "kiwi", "pear", "plum")
    index("s1")
    (hit,) = keyword_service.retrieve(principal, "s1", "kiwi", k=10, mode="keyword")
    assert hit.dist == pytest.approx(keyword_distance(math.log(8 / 3)))


def test_k_limits_the_hits(keyword_service, principal, seed, index):
    seed("s1", "apple", "apple pie", "apple tart", "pear")
    index("s1")
    assert len(keyword_service.retrieve(principal, "s1", "apple", k=2, mode="keyword")) == 2
    assert len(keyword_service.retrieve(principal, "s1", "apple", k=50, mode="keyword")) == 3


def test_asking_for_more_hits_never_changes_the_ones_before(keyword_service, principal, seed, index):
    seed("s1", "kiwi pear plum", "kiwi pear plum", "kiwi", "kiwi")
    index("s1")
    full = [h.message["id"] for h in keyword_service.retrieve(principal, "s1", "kiwi", k=10, mode="keyword")]
    assert full == [3, 4, 1, 2]
    for k in (1, 2, 3):
        hits = keyword_service.retrieve(principal, "s1", "kiwi", k=k, mode="keyword")
        assert [h.message["id"] for h in hits] == full[:k], f"k={k}"


def test_a_query_of_only_stopwords_finds_nothing_by_keyword(keyword_service, principal, seed, index):
    seed("s1", "it is what it is")
    index("s1")
    assert keyword_service.retrieve(principal, "s1", "what is it", k=10, mode="keyword") == []


def test_a_session_that_does_not_exist_has_no_hits(keyword_service, principal):
    assert keyword_service.retrieve(principal, "nope", "apple", k=10, mode="keyword") == []


def test_messages_not_indexed_yet_are_not_found_until_they_are(keyword_service, principal, seed, index):
    seed("s1", "apple")
    assert keyword_service.retrieve(principal, "s1", "apple", k=10, mode="keyword") == []
    index("s1")
    assert contents(keyword_service.retrieve(principal, "s1", "apple", k=10, mode="keyword")) == ["apple"]


def test_archived_messages_are_found(keyword_service, principal, seed, archive, index):
    seed("s1", "ancient apple", "pear", "plum", "fresh apple")
    archive("s1", 3)
    index("s1")
    hits = keyword_service.retrieve(principal, "s1", "apple", k=10, mode="keyword")
    assert sorted(contents(hits)) == ["ancient apple", "fresh apple"]


def test_messages_folded_into_the_archive_after_indexing_are_still_found(
    keyword_service, principal, seed, archive, index
):
    seed("s1", "ancient apple", "pear", "plum")
    index("s1")
    archive("s1", 2)
    assert contents(keyword_service.retrieve(principal, "s1", "apple", k=10, mode="keyword")) == [
        "ancient apple"
    ]


def test_a_deleted_message_is_no_longer_found(keyword_service, principal, seed, sessions, archive, index):
    seed("s1", "apple one", "apple two", "apple three")
    archive("s1", 1)
    index("s1")
    sessions.delete_message(TENANT, "s1", 1)
    sessions.delete_message(TENANT, "s1", 3)
    assert contents(keyword_service.retrieve(principal, "s1", "apple", k=10, mode="keyword")) == ["apple two"]


def test_indexed_messages_gone_from_the_session_are_skipped_and_the_next_best_fill_k(
    fold_store, keyword_service, principal, seed, sessions, fake_redis, keyspace, index
):
    # A fold without the archive (long-term memory switched off meanwhile) drops messages
    # without unindexing them.
    seed("s1", "kiwi", "kiwi pear plum", "kiwi fig lime lemon")
    index("s1")
    state = fold_store.begin_fold(TENANT, "s1", lock_token="t", lock_seconds=30)
    assert state is not None and state.gen is not None
    commit = FoldCommit(state.gen, 0, 0, "s", 10, [1], archive=False)
    assert (
        fold_store.finish_fold(
            TENANT, "s1", commit, lock_token="t", window_size=1000, window_tokens=None
        ).status
        == "ok"
    )
    hits = keyword_service.retrieve(principal, "s1", "kiwi", k=1, mode="keyword")
    assert where(hits) == [("s1", 2)]


# --- modes and their errors ----------------------------------------------------------------------


def test_auto_is_keyword_without_embeddings(keyword_service, principal, seed, index):
    seed("s1", "apple", "pear apple")
    index("s1")
    assert not keyword_service.embeddings
    auto = keyword_service.retrieve(principal, "s1", "apple", k=10, mode="auto")
    assert auto == keyword_service.retrieve(principal, "s1", "apple", k=10, mode="keyword")
    assert auto


def test_auto_is_hybrid_with_embeddings(service, principal, seed, index, embedder):
    seed("s1", "apple", "pear apple", "plum")
    index("s1")
    assert service.embeddings
    calls = len(embedder.calls)
    auto = service.retrieve(principal, "s1", "apple", k=10, mode="auto")
    assert auto == service.retrieve(principal, "s1", "apple", k=10, mode="hybrid")
    assert embedder.calls[calls:] == [["apple"], ["apple"]]
    assert auto != service.retrieve(principal, "s1", "apple", k=10, mode="keyword")


def test_keyword_mode_never_embeds_the_query(service, principal, seed, index, embedder, usage):
    seed("s1", "apple")
    index("s1")
    calls, spent = len(embedder.calls), usage.tokens_spent_today(TENANT)
    embedder.error = EmbeddingError("down")
    assert contents(service.retrieve(principal, "s1", "apple", k=10, mode="keyword")) == ["apple"]
    assert len(embedder.calls) == calls
    assert usage.tokens_spent_today(TENANT) == spent


@pytest.mark.parametrize("mode", ["vector", "hybrid"])
def test_vector_modes_need_embeddings_configured(keyword_service, principal, mode):
    with pytest.raises(InvalidRequest) as raised:
        keyword_service.retrieve(principal, "s1", "apple", k=10, mode=mode)
    assert raised.value.code == "embeddings_not_configured"
    with pytest.raises(InvalidRequest) as raised:
        keyword_service.search(principal, "apple", k=10, mode=mode)
    assert raised.value.code == "embeddings_not_configured"


@pytest.mark.parametrize("mode", ["auto", "keyword", "vector", "hybrid"])
def test_every_mode_is_refused_when_the_tenant_has_long_term_memory_off(
    service, tenants, make_policy, embedder, mode
):
    tenants.add(TENANT, make_policy(long_term_memory=False))
    principal = tenants(TENANT)
    with pytest.raises(InvalidRequest) as raised:
        service.retrieve(principal, "s1", "apple", k=10, mode=mode)
    assert raised.value.code == "long_term_memory_disabled"
    with pytest.raises(InvalidRequest) as raised:
        service.search(principal, "apple", k=10, mode=mode)
    assert raised.value.code == "long_term_memory_disabled"
    assert embedder.calls == []


def test_long_term_memory_off_is_refused_before_embeddings_are_asked_for(
    keyword_service, tenants, make_policy
):
    tenants.add(TENANT, make_policy(long_term_memory=False))
    with pytest.raises(InvalidRequest) as raised:
        keyword_service.retrieve(tenants(TENANT), "s1", "apple", k=10, mode="vector")
    assert raised.value.code == "long_term_memory_disabled"


@pytest.mark.parametrize("mode", ["vector", "hybrid", "auto"])
def test_a_failed_query_embedding_is_embeddings_unavailable_with_the_servers_retry_after(
    service, principal, seed, index, embedder, mode
):
    seed("s1", "apple")
    index("s1")
    embedder.error = EmbeddingError("slow down", code="embedding_rate_limited", retry_after=7.5)
    with pytest.raises(EmbeddingsUnavailable) as raised:
        service.retrieve(principal, "s1", "apple", k=10, mode=mode)
    assert raised.value.retry_after == 7
    assert raised.value.code == "embeddings_unavailable"


def test_without_a_retry_after_clients_are_told_to_retry_in_a_second(service, principal, seed, embedder):
    seed("s1", "apple")
    embedder.error = EmbeddingError("boom")
    with pytest.raises(EmbeddingsUnavailable) as raised:
        service.search(principal, "apple", k=10, mode="vector")
    assert raised.value.retry_after == 1


def test_the_query_embedding_is_billed_to_the_tenant(service, principal, seed, index, usage, embedder):
    seed("s1", "apple")
    index("s1")
    before = usage.report(TENANT, sessions=1)
    service.retrieve(principal, "s1", "apple", k=10, mode="vector")
    after = usage.report(TENANT, sessions=1)
    assert after["llm_calls"]["today"] == before["llm_calls"]["today"] + 1
    assert after["prompt_tokens"]["today"] == before["prompt_tokens"]["today"] + embedder.tokens_per_text
    assert usage.report(OTHER, sessions=0)["llm_calls"]["today"] == 0


@pytest.mark.parametrize("session_id", ["", "x" * 257, "tab\there", "nul\x00", "del\x7f"])
def test_an_invalid_session_id_is_refused(keyword_service, principal, session_id):
    with pytest.raises(InvalidRequest) as raised:
        keyword_service.retrieve(principal, session_id, "apple", k=10, mode="keyword")
    assert raised.value.code == "invalid_session_id"
    with pytest.raises(InvalidRequest) as raised:
        keyword_service.search(principal, "apple", k=10, mode="keyword", session_ids=["ok", session_id])
    assert raised.value.code == "invalid_session_id"


# --- vectors and hybrid --------------------------------------------------------------------------


def test_vector_retrieval_ranks_by_cosine_distance(service, principal, seed, index, embedder):
    embedder.table.update(
        {
            "query?": vec(1.0, 0.0),
            "near": vec(1.0, 0.1),
            "middle": vec(0.6, 0.8),
            "far": vec(0.0, 1.0),
        }
    )
    seed("s1", "far", "near", "middle", "")
    index("s1")
    hits = service.retrieve(principal, "s1", "query?", k=10, mode="vector")
    assert contents(hits) == ["near", "middle", "far"], "the empty message has no vector"
    assert [h.dist for h in hits] == pytest.approx([1 - 1 / math.sqrt(1.01), 0.4, 1.0], abs=1e-6)


def test_vector_retrieval_finds_messages_sharing_no_word_with_the_query(
    service, principal, seed, index, embedder
):
    embedder.table.update({"feline": vec(1.0, 0.0), "my cat sleeps": vec(0.9, 0.1), "stocks": vec(0.0, 1.0)})
    seed("s1", "stocks", "my cat sleeps")
    index("s1")
    assert service.retrieve(principal, "s1", "feline", k=10, mode="keyword") == []
    assert contents(service.retrieve(principal, "s1", "feline", k=1, mode="vector")) == ["my cat sleeps"]


def test_vectors_from_a_previous_model_of_another_dimension_are_ignored(
    service, principal, seed, index, embedder, fake_redis, keyspace
):
    embedder.table.update({"q": vec(1.0), "old": vec(1.0), "new": vec(0.5, 0.5)})
    seed("s1", "old", "new")
    index("s1")
    fake_redis.hset(keyspace.session(TENANT, "s1").vectors, "1", b"\x00" * 4 * (DIMS + 4))
    assert contents(service.retrieve(principal, "s1", "q", k=10, mode="vector")) == ["new"]


def test_hybrid_fuses_the_keyword_and_vector_rankings(service, principal, seed, index, embedder):
    embedder.table.update(
        {
            "Apple?": vec(1.0, 0.0),
            "apple pie": vec(0.8, 0.6),  # keyword 2nd, vector 2nd
            "apple": vec(0.0, 1.0),  # keyword 1st, vector 3rd
            "banana": vec(1.0, 0.1),  # no keyword match, vector 1st
        }
    )
    seed("s1", "apple pie", "apple", "banana")
    index("s1")
    hits = service.retrieve(principal, "s1", "Apple?", k=10, mode="hybrid")
    best = 2 / 61
    assert where(hits) == [("s1", 2), ("s1", 1), ("s1", 3)]
    assert [h.dist for h in hits] == pytest.approx(
        [1 - (1 / 61 + 1 / 63) / best, 1 - (2 / 62) / best, 1 - (1 / 61) / best]
    )


def test_hybrid_with_a_query_of_only_stopwords_ranks_by_vectors(service, principal, seed, index, embedder):
    embedder.table.update({"what is it": vec(1.0), "a": vec(0.0, 1.0), "b": vec(1.0, 0.2)})
    seed("s1", "a", "b")
    index("s1")
    hits = service.retrieve(principal, "s1", "what is it", k=10, mode="hybrid")
    assert contents(hits) == ["b", "a"]
    assert hits[0].dist == pytest.approx(0.5)


def test_a_message_first_in_both_rankings_is_at_hybrid_distance_zero(
    service, principal, seed, index, embedder
):
    embedder.table.update({"kiwi?": vec(1.0), "kiwi": vec(1.0), "pear kiwi fig": vec(0.0, 1.0)})
    seed("s1", "kiwi", "pear kiwi fig")
    index("s1")
    assert service.retrieve(principal, "s1", "kiwi?", k=1, mode="hybrid")[0].dist == 0.0


# --- tenant-wide search --------------------------------------------------------------------------


def test_search_covers_every_session_of_the_tenant_ranked_as_one_corpus(
    keyword_service, principal, seed, index
):
    seed("s1", "kiwi", "pear")
    seed("s2", "kiwi kiwi lime", "plum")
    seed("s3", "fig")
    index("s1", "s2", "s3")
    hits = keyword_service.search(principal, "kiwi", k=10, mode="keyword")
    assert sorted(where(hits)) == [("s1", 1), ("s2", 1)]
    # N = 5, df = 2, average length 7 / 5: the corpus is the three sessions together.
    idf = math.log(1 + 3.5 / 2.5)
    scores = {
        ("s1", 1): idf * 2.2 / (1 + 1.2 * (0.25 + 0.75 * 1 / 1.4)),
        ("s2", 1): idf * 2 * 2.2 / (2 + 1.2 * (0.25 + 0.75 * 3 / 1.4)),
    }
    for hit in hits:
        assert hit.dist == pytest.approx(keyword_distance(scores[(hit.session_id, hit.message["id"])]))
    assert [h.dist for h in hits] == sorted(h.dist for h in hits)


def test_search_can_be_limited_to_some_sessions(keyword_service, principal, seed, index):
    for session_id in ("s1", "s2", "s3"):
        seed(session_id, f"kiwi from {session_id}")
    index("s1", "s2", "s3")
    hits = keyword_service.search(principal, "kiwi", k=10, mode="keyword", session_ids=["s3", "s1", "s3"])
    assert sorted(h.session_id for h in hits) == ["s1", "s3"], "each session once"
    assert keyword_service.search(principal, "kiwi", k=10, mode="keyword", session_ids=["unknown"]) == []
    assert keyword_service.search(principal, "kiwi", k=10, mode="keyword", session_ids=[]) == []


def test_search_of_a_tenant_without_sessions_is_empty(service, principal, embedder):
    assert service.search(principal, "kiwi", k=10, mode="hybrid") == []
    assert embedder.calls == [], "no query embedding when there is nothing to search"


def test_the_vector_limit_keeps_whole_sessions_most_recently_written_first(
    make_service, principal, seed, index, embedder, fake_redis, keyspace
):
    embedder.table["q"] = vec(1.0)
    for session_id in ("old", "mid", "new"):
        seed(session_id, f"{session_id} one", f"{session_id} two")
    index("old", "mid", "new")
    fake_redis.zadd(keyspace.sessions_index(TENANT), {"old": 1_000, "mid": 2_000, "new": 3_000})

    def sessions_searched(limit: int) -> set[str]:
        service = make_service(exact_vector_limit=limit)
        return {h.session_id for h in service.search(principal, "q", k=50, mode="vector")}

    assert sessions_searched(1) == {"new"}, "at least the most recent session"
    assert sessions_searched(3) == {"new"}
    assert sessions_searched(4) == {"new", "mid"}
    assert sessions_searched(6) == {"new", "mid", "old"}


def test_the_vector_limit_skips_sessions_without_vectors_when_choosing_the_first(
    make_service, principal, seed, index, embedder, fake_redis, keyspace
):
    embedder.table["q"] = vec(1.0)
    seed("old", "old one")
    seed("new", "")  # indexed, but nothing to embed
    index("old", "new")
    fake_redis.zadd(keyspace.sessions_index(TENANT), {"old": 1_000, "new": 2_000})
    hits = make_service(exact_vector_limit=0).search(principal, "q", k=10, mode="vector")
    assert where(hits) == [("old", 1)]


# --- tenant isolation ----------------------------------------------------------------------------


def test_search_never_returns_another_tenants_messages_even_with_the_same_session_ids(
    service, tenants, seed, index
):
    seed("s1", "our apple")
    seed("s2", "our pear")
    seed("s1", "their apple", "their apple apple", tenant_id=OTHER)
    seed("s2", "their apple pie", tenant_id=OTHER)
    index("s1", "s2")
    index("s1", "s2", tenant_id=OTHER)
    principal = tenants(TENANT)
    for mode in ("keyword", "vector", "hybrid"):
        for hits in (
            service.search(principal, "apple", k=50, mode=mode),
            service.search(principal, "apple", k=50, mode=mode, session_ids=["s1", "s2"]),
            service.retrieve(principal, "s1", "apple", k=50, mode=mode),
        ):
            assert hits, mode
            assert all(content.startswith("our ") for content in contents(hits)), (mode, contents(hits))
    theirs = service.search(tenants(OTHER), "apple", k=50, mode="keyword")
    assert sorted(contents(theirs)) == ["their apple", "their apple apple", "their apple pie"]


def test_another_tenants_messages_do_not_change_the_scores(keyword_service, tenants, seed, index):
    seed("s1", "apple", "pear plum")
    index("s1")
    alone = keyword_service.search(tenants(TENANT), "apple", k=10, mode="keyword")
    seed("s1", "apple", "apple apple", "apple fig", tenant_id=OTHER)
    index("s1", tenant_id=OTHER)
    assert keyword_service.search(tenants(TENANT), "apple", k=10, mode="keyword") == alone


# --- awkward session ids -------------------------------------------------------------------------

AWKWARD = [
    "}",
    "{",
    "{acme:plain}",
    "acme:plain}",
    "plain}",
    "a|b",
    "*",
    "-",
    "@home",
    "(x)",
    "back\\slash",
    "c:d",
    "e.f",
    "with space",
    " ",
    "%7D",
    "ünïcødé 東京 🍎",
    "plain",
]


def word_for(position: int) -> str:
    return f"word{chr(ord('a') + position)}"  # a term unique to one session


def test_awkward_session_ids_are_searched_and_stay_isolated(service, principal, seed, index):
    for position, session_id in enumerate(AWKWARD):
        seed(session_id, f"shared {word_for(position)}")
    index(*AWKWARD)
    for position, session_id in enumerate(AWKWARD):
        own = service.retrieve(principal, session_id, word_for(position), k=10, mode="keyword")
        assert contents(own) == [f"shared {word_for(position)}"], session_id
        shared = service.retrieve(principal, session_id, "shared", k=10, mode="hybrid")
        assert {h.session_id for h in shared} == {session_id}, session_id
        assert contents(shared) == [f"shared {word_for(position)}"], session_id
        found = service.search(principal, word_for(position), k=10, mode="keyword")
        assert where(found) == [(session_id, 1)], session_id
    everywhere = service.search(principal, "shared", k=50, mode="keyword")
    assert sorted(h.session_id for h in everywhere) == sorted(AWKWARD)


def test_an_awkward_session_id_of_one_tenant_does_not_reach_another_tenants_session(
    keyword_service, tenants, seed, index
):
    seed("globex:x}", "apple")
    seed("x", "apple", tenant_id=OTHER)
    index("globex:x}")
    index("x", tenant_id=OTHER)
    hits = keyword_service.search(tenants(TENANT), "apple", k=10, mode="keyword")
    assert where(hits) == [("globex:x}", 1)]
    assert keyword_service.retrieve(tenants(TENANT), "x", "apple", k=10, mode="keyword") == []


# --- the metadata filter -------------------------------------------------------------------------


@pytest.fixture
def tagged(sessions, index):
    """Messages, each mentioning "apple", with these metadata (message i+1 has the i-th)."""

    def tagged(*metadata: dict | None, session_id: str = "s1") -> None:
        new = [NewMessage("Human", f"apple {i + 1}", m, 1) for i, m in enumerate(metadata)]
        sessions.append(TENANT, session_id, new, indexed=True)
        index(session_id)

    return tagged


def matching(service, principal, metadata: dict, k: int = 50) -> list[int]:
    return sorted(
        h.message["id"] for h in service.search(principal, "apple", k=k, mode="keyword", metadata=metadata)
    )


def test_every_given_key_and_value_must_match(keyword_service, principal, tagged):
    tagged(
        {"lang": "en", "topic": "fruit"},
        {"lang": "en"},
        {"lang": "de", "topic": "fruit"},
        {"lang": "en", "topic": "fruit", "extra": 1},
        None,
    )
    assert matching(keyword_service, principal, {"lang": "en"}) == [1, 2, 4]
    assert matching(keyword_service, principal, {"lang": "en", "topic": "fruit"}) == [1, 4]
    assert matching(keyword_service, principal, {"lang": "fr"}) == []
    assert matching(keyword_service, principal, {"missing": None}) == []


def test_an_empty_filter_filters_nothing(keyword_service, principal, tagged):
    tagged({"lang": "en"}, None)
    assert matching(keyword_service, principal, {}) == [1, 2]


def test_null_matches_only_a_key_present_with_null(keyword_service, principal, tagged):
    tagged({"k": None}, {"k": 0}, {"other": None}, None)
    assert matching(keyword_service, principal, {"k": None}) == [1]


def test_nested_values_must_be_equal_as_a_whole(keyword_service, principal, tagged):
    tagged(
        {"user": {"id": 7, "role": "admin"}}, {"user": {"id": 7}}, {"tags": ["a", "b"]}, {"tags": ["b", "a"]}
    )
    assert matching(keyword_service, principal, {"user": {"id": 7}}) == [2]
    assert matching(keyword_service, principal, {"user": {"role": "admin", "id": 7}}) == [1]
    assert matching(keyword_service, principal, {"tags": ["a", "b"]}) == [3]


@pytest.mark.parametrize(
    ("held", "wanted"),
    [
        ("1", 1),
        (1, "1"),
        ("true", True),
        (None, False),
        ([1], 1),
        # JSON true is not 1, false is not 0 (Python's == says they are):
        (True, 1),
        (1, True),
        (False, 0),
        ([True, False], [1, 0]),
        ({"n": True}, {"n": 1}),
        # and 1 is not 1.0:
        (1, 1.0),
        (1.0, 1),
    ],
)
def test_the_filter_is_type_sensitive(keyword_service, principal, tagged, held, wanted):
    tagged({"v": held})
    assert matching(keyword_service, principal, {"v": wanted}) == []
    assert matching(keyword_service, principal, {"v": held}) == [1]


def test_the_filter_looks_past_many_better_ranked_messages_that_do_not_match(
    keyword_service, principal, sessions, index
):
    # 120 short, better-ranked messages without the tag before the two tagged ones.
    new = [NewMessage("Human", "apple", None, 1) for _ in range(120)]
    new += [NewMessage("Human", "apple and a long tail of other words", {"pick": True}, 1) for _ in range(2)]
    sessions.append(TENANT, "s1", new, indexed=True)
    index("s1")
    hits = keyword_service.search(principal, "apple", k=2, mode="keyword", metadata={"pick": True})
    assert [h.message["id"] for h in hits] == [121, 122]
    (first,) = keyword_service.search(principal, "apple", k=1, mode="keyword", metadata={"pick": True})
    assert first.message["id"] == 121


def test_the_filter_applies_to_every_mode_and_across_sessions(service, principal, tagged, embedder):
    tagged({"lang": "en"}, {"lang": "de"}, session_id="s1")
    tagged({"lang": "de"}, {"lang": "en"}, session_id="s2")
    for mode in ("keyword", "vector", "hybrid"):
        hits = service.search(principal, "apple", k=10, mode=mode, metadata={"lang": "en"})
        assert sorted(where(hits)) == [("s1", 1), ("s2", 2)], mode
