"""BM25 over packed postings, checked against a plain-Python reference implementation."""

from __future__ import annotations

import math
import random
import struct
from collections.abc import Sequence

import numpy as np
import pytest

from app.domain.search.keyword import K1, B, SessionPostings, bm25, keyword_distance, pack_posting, top
from app.domain.search.terms import query_terms, term_frequencies, terms

# --- the reference: BM25 from the texts, in plain Python ---------------------------------------

Corpus = Sequence[Sequence[str]]  # sessions → their documents' texts (message id = position + 1)


def reference_scores(corpus: Corpus, query: str) -> dict[tuple[int, int], float]:
    """(session index, message id) → BM25 score, for every document matching a query term,
    with the statistics of the whole corpus (every session)."""
    documents = [
        (s, position + 1, terms(text))
        for s, texts in enumerate(corpus)
        for position, text in enumerate(texts)
    ]
    n = len(documents)
    average = sum(len(words) for _, _, words in documents) / n
    scores: dict[tuple[int, int], float] = {}
    for term in query_terms(query):
        df = sum(1 for _, _, words in documents if term in words)
        if not df:
            continue
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        for s, mid, words in documents:
            tf = words.count(term)
            if tf:
                norm = 1.2 * (1 - 0.75 + 0.75 * len(words) / average)
                scores[(s, mid)] = scores.get((s, mid), 0.0) + idf * tf * 2.2 / (tf + norm)
    return scores


def postings_for(corpus: Corpus, query: str) -> tuple[list[SessionPostings], int]:
    """What the store would read for ``query``: per session its statistics and each query
    term's packed postings, built the way indexing builds them."""
    wanted = query_terms(query)
    found = []
    for texts in corpus:
        lists = {term: bytearray() for term in wanted}
        total = 0
        for position, text in enumerate(texts):
            length, frequencies = term_frequencies(text)
            total += length
            for term in wanted:
                if frequencies[term]:
                    lists[term] += pack_posting(position + 1, frequencies[term], length)
        found.append(SessionPostings(len(texts), total, [bytes(lists[t]) for t in wanted]))
    return found, len(wanted)


def ranked(corpus: Corpus, query: str, k: int) -> list[tuple[int, int, float]]:
    sessions, n_terms = postings_for(corpus, query)
    return bm25(sessions, n_terms, k)


def as_scores(results: list[tuple[int, int, float]]) -> dict[tuple[int, int], float]:
    return {(s, mid): score for s, mid, score in results}


# --- packing -------------------------------------------------------------------------------------


def test_a_posting_is_twelve_bytes_of_little_endian_uint32_id_frequency_length():
    assert pack_posting(1, 2, 3) == b"\x01\x00\x00\x00\x02\x00\x00\x00\x03\x00\x00\x00"
    assert struct.unpack("<III", pack_posting(2**32 - 1, 7, 65_000)) == (2**32 - 1, 7, 65_000)


def test_the_parameters_are_the_usual_ones():
    assert (K1, B) == (1.2, 0.75)


# --- hand-computed scores ------------------------------------------------------------------------


def test_a_single_occurrence_in_a_document_of_average_length_scores_exactly_its_idf():
    # N = 3 documents of 2 terms each; "kiwi" is in 1: idf = ln(1 + 2.5 / 1.5) = ln(8/3),
    # and tf (k1 + 1) / (tf + k1) = 2.2 / 2.2 = 1.
    corpus = [["kiwi mango", "pear plum", "fig lime"]]
    assert ranked(corpus, "kiwi", 10) == [(0, 1, pytest.approx(math.log(8 / 3)))]


def test_two_occurrences_in_a_document_of_average_length_score_one_and_three_eighths_idf():
    # Both documents have 2 terms; "kiwi" is in 1 of 2: idf = ln(1 + 1.5 / 1.5) = ln 2, and
    # 2 * 2.2 / (2 + 1.2) = 1.375.
    corpus = [["kiwi kiwi", "pear plum"]]
    assert ranked(corpus, "kiwi", 10) == [(0, 1, pytest.approx(1.375 * math.log(2)))]


def test_a_longer_document_scores_lower_for_the_same_term_frequency():
    # Lengths 1 and 3, average 2: the short one's norm is 1.2 * (0.25 + 0.375) = 0.75, the
    # long one's 1.2 * (0.25 + 1.125) = 1.65; idf = ln(1 + 0.5 / 2.5) = ln 1.2 for both.
    corpus = [["kiwi", "kiwi pear plum"]]
    idf = math.log(1.2)
    assert ranked(corpus, "kiwi", 10) == [
        (0, 1, pytest.approx(idf * 2.2 / 1.75)),
        (0, 2, pytest.approx(idf * 2.2 / 2.65)),
    ]


def test_a_term_in_every_document_still_scores_above_zero():
    # idf = ln(1 + 0.5 / 2.5) > 0: the non-negative variant.
    results = ranked([["kiwi pear", "kiwi plum"]], "kiwi", 10)
    assert [mid for _, mid, _ in results] == [1, 2]
    assert all(score == pytest.approx(math.log(1.2)) for _, _, score in results)


def test_scores_of_several_query_terms_add_up():
    corpus = [["kiwi pear", "kiwi plum", "pear fig", "lime fig"]]
    kiwi, pear = as_scores(ranked(corpus, "kiwi", 10)), as_scores(ranked(corpus, "pear", 10))
    both = as_scores(ranked(corpus, "kiwi pear", 10))
    assert both.keys() == {(0, 1), (0, 2), (0, 3)}
    assert both[(0, 1)] == pytest.approx(kiwi[(0, 1)] + pear[(0, 1)])
    assert both[(0, 2)] == pytest.approx(kiwi[(0, 2)])
    assert both[(0, 3)] == pytest.approx(pear[(0, 3)])


def test_a_repeated_query_term_counts_once():
    corpus = [["kiwi pear", "plum fig"]]
    assert ranked(corpus, "kiwi kiwi KIWI", 10) == ranked(corpus, "kiwi", 10)


# --- against the reference ---------------------------------------------------------------------

VOCABULARY = ["apple", "banana", "cherry", "date", "elder", "fig", "grape", "kiwi", "lemon", "mango"]


def random_corpus(rng: random.Random, sessions: int) -> list[list[str]]:
    return [
        [
            " ".join(rng.choice(VOCABULARY) for _ in range(rng.randint(0, 9)))
            + rng.choice(["", " the", " and of"])  # stopwords: not part of the length
            for _ in range(rng.randint(0, 8))
        ]
        for _ in range(sessions)
    ]


@pytest.mark.parametrize("seed", range(40))
def test_every_matching_document_gets_the_reference_score_best_first(seed):
    rng = random.Random(seed)
    corpus = random_corpus(rng, sessions=rng.randint(1, 4))
    if not any(corpus):
        corpus[0].append("apple")
    query = " ".join(rng.sample(VOCABULARY, rng.randint(1, 4)))
    expected = reference_scores(corpus, query)
    results = ranked(corpus, query, k=1000)
    assert as_scores(results).keys() == expected.keys()
    for key, score in as_scores(results).items():
        assert score == pytest.approx(expected[key], rel=1e-9)
    scores = [score for _, _, score in results]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("seed", range(20))
def test_the_top_k_are_the_k_best_reference_scores(seed):
    rng = random.Random(1000 + seed)
    corpus = random_corpus(rng, sessions=3)
    corpus[0] += ["apple banana cherry"]
    query = "apple banana cherry"
    expected = sorted(reference_scores(corpus, query).values(), reverse=True)
    for k in (1, 2, 3, 5):
        results = ranked(corpus, query, k)
        assert [score for _, _, score in results] == pytest.approx(expected[:k], rel=1e-9)


def test_statistics_are_summed_over_every_searched_session():
    kiwi_session = ["kiwi pear", "plum fig"]
    other = ["kiwi kiwi lime", "lemon", "mango date grape"]
    alone = as_scores(ranked([kiwi_session], "kiwi", 10))
    together = as_scores(ranked([kiwi_session, other], "kiwi", 10))
    # Alone: N = 2, df = 1; together: N = 5, df = 2, and the average length changes too.
    assert alone[(0, 1)] == pytest.approx(reference_scores([kiwi_session], "kiwi")[(0, 1)])
    assert together == pytest.approx(reference_scores([kiwi_session, other], "kiwi"))
    assert together[(0, 1)] != pytest.approx(alone[(0, 1)])


def test_sessions_without_a_match_still_count_in_the_statistics():
    with_kiwi = ["kiwi pear", "kiwi plum"]
    unmatched = ["lemon lime", "fig date", "grape mango"]
    results = as_scores(ranked([with_kiwi, unmatched], "kiwi", 10))
    assert results.keys() == {(0, 1), (0, 2)}
    # N = 5 and df = 2: idf = ln(1 + 3.5 / 2.5); every document has the average length.
    assert results[(0, 1)] == pytest.approx(math.log(1 + 3.5 / 2.5))


def test_equal_message_ids_in_different_sessions_are_different_results():
    results = ranked([["kiwi"], ["kiwi"], ["kiwi"]], "kiwi", 10)
    assert [(s, mid) for s, mid, _ in results] == [(0, 1), (1, 1), (2, 1)]


def test_the_session_index_reported_is_the_position_in_the_given_list():
    results = ranked([[], ["pear"], ["lemon", "kiwi lime"]], "kiwi", 10)
    assert [(s, mid) for s, mid, _ in results] == [(2, 2)]


def test_large_message_ids_survive_the_session_key_packing():
    big = 2**32 - 1
    sessions = [
        SessionPostings(1, 1, [pack_posting(big, 1, 1)]),
        SessionPostings(1, 1, [pack_posting(7, 1, 1)]),
    ]
    assert [(s, mid) for s, mid, _ in bm25(sessions, 1, 10)] == [(0, big), (1, 7)]


# --- top k and ties ----------------------------------------------------------------------------


def test_k_limits_the_results_to_the_best():
    corpus = [["kiwi", "kiwi kiwi pear", "kiwi pear plum fig", "kiwi kiwi kiwi"]]
    full = ranked(corpus, "kiwi", 10)
    assert len(full) == 4
    for k in range(1, 5):
        assert ranked(corpus, "kiwi", k) == full[:k]


def test_equal_scores_come_in_session_then_message_id_order():
    results = ranked([["kiwi pear", "plum", "kiwi fig"], ["kiwi lime"]], "kiwi", 10)
    assert [(s, mid) for s, mid, _ in results] == [(0, 1), (0, 3), (1, 1)]
    assert len({score for _, _, score in results}) == 1


def test_when_k_cuts_through_a_tie_the_earliest_tied_documents_are_kept():
    # Messages 3 and 4 tie for first, 1 and 2 for third: every k must be a prefix of the
    # full ranking [3, 4, 1, 2]. Today k = 1 answers [4] and k = 3 answers [3, 4, 2].
    corpus = [["kiwi pear plum", "kiwi pear plum", "kiwi", "kiwi"]]
    full = [mid for _, mid, _ in ranked(corpus, "kiwi", 10)]
    assert full == [3, 4, 1, 2]
    for k in range(1, 4):
        assert [mid for _, mid, _ in ranked(corpus, "kiwi", k)] == full[:k], f"k={k}"


def test_top_returns_the_indices_of_the_highest_scores_highest_first():
    scores = np.array([0.5, 3.0, 1.0, 2.0])
    assert top(scores, 2).tolist() == [1, 3]
    assert top(scores, 10).tolist() == [1, 3, 2, 0]
    assert top(np.array([]), 3).tolist() == []


# --- empty inputs --------------------------------------------------------------------------------


def test_no_sessions_no_results():
    assert bm25([], 1, 10) == []


def test_no_query_terms_no_results():
    assert bm25([SessionPostings(3, 9, [])], 0, 10) == []


def test_sessions_without_documents_give_no_results_even_with_stray_postings():
    assert bm25([SessionPostings(0, 0, [pack_posting(1, 1, 1)])], 1, 10) == []


def test_terms_nobody_used_give_no_results():
    assert bm25([SessionPostings(2, 4, [b"", b""]), SessionPostings(1, 1, [b"", b""])], 2, 10) == []


def test_k_zero_gives_no_results():
    assert ranked([["kiwi", "kiwi pear"]], "kiwi", 0) == []


def test_documents_of_length_zero_do_not_divide_by_zero():
    # Every document only stopwords but one: the average length is tiny, not zero.
    results = ranked([["the of", "and", "kiwi"]], "kiwi", 10)
    assert [(s, mid) for s, mid, _ in results] == [(0, 3)]
    assert math.isfinite(results[0][2]) and results[0][2] > 0


# --- distance --------------------------------------------------------------------------------------


def test_keyword_distance_is_one_for_no_match_and_falls_towards_zero_as_the_score_grows():
    assert keyword_distance(0.0) == 1.0
    assert keyword_distance(1.0) == 0.5
    assert keyword_distance(3.0) == 0.25
    assert keyword_distance(10.0) < keyword_distance(2.0) < keyword_distance(0.1)
    assert 0 < keyword_distance(1e9) < 1e-8
