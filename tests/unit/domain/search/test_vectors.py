"""Exact cosine search over stored float32 unit vectors."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from app.domain.search.vectors import cosine_top, pack_vector


def unpack(raw: bytes) -> list[float]:
    return np.frombuffer(raw, dtype="<f4").tolist()


def test_a_vector_is_stored_unit_length_as_little_endian_float32():
    raw = pack_vector([3.0, 4.0])
    assert raw == np.array([0.6, 0.8], dtype="<f4").tobytes()
    assert len(raw) == 8


def test_a_zero_vector_is_stored_as_zeros_not_nan():
    assert unpack(pack_vector([0.0, 0.0, 0.0])) == [0.0, 0.0, 0.0]


def test_packing_accepts_any_sequence_of_numbers():
    assert pack_vector((1, 0)) == pack_vector([1.0, 0.0]) == pack_vector(np.array([2.0, 0.0]))


def candidates(*vectors: list[float], session: int = 0) -> list[tuple[int, int, bytes]]:
    return [(session, i + 1, pack_vector(v)) for i, v in enumerate(vectors)]


def test_the_nearest_come_first_with_the_cosine_distance():
    found = cosine_top([1.0, 0.0], candidates([0.0, 1.0], [1.0, 0.0], [1.0, 1.0]), 10)
    assert [(s, mid) for s, mid, _ in found] == [(0, 2), (0, 3), (0, 1)]
    assert [d for _, _, d in found] == pytest.approx([0.0, 1 - math.sqrt(0.5), 1.0], abs=1e-6)


def test_the_query_need_not_be_unit_length():
    store = candidates([1.0, 2.0], [2.0, -1.0])
    assert cosine_top([10.0, 20.0], store, 10) == cosine_top([0.1, 0.2], store, 10)


def test_an_opposite_vector_is_at_distance_two_and_nothing_is_below_zero():
    found = cosine_top([1.0, 0.0], candidates([-1.0, 0.0], [1.0, 0.0]), 10)
    assert found[0][2] == 0.0
    assert found[1][2] == pytest.approx(2.0)


def test_k_keeps_only_the_nearest():
    rng = random.Random(3)
    vectors = [[rng.gauss(0, 1) for _ in range(16)] for _ in range(50)]
    query = [rng.gauss(0, 1) for _ in range(16)]
    full = cosine_top(query, candidates(*vectors), 100)
    assert len(full) == 50
    assert [d for _, _, d in full] == sorted(d for _, _, d in full)
    for k in (1, 5, 17):
        assert [(s, mid) for s, mid, _ in cosine_top(query, candidates(*vectors), k)] == [
            (s, mid) for s, mid, _ in full[:k]
        ]


def test_the_distances_match_a_plain_python_cosine():
    rng = random.Random(11)
    vectors = [[rng.uniform(-1, 1) for _ in range(12)] for _ in range(20)]
    query = [rng.uniform(-1, 1) for _ in range(12)]

    def cosine(a: list[float], b: list[float]) -> float:
        dot = sum(x * y for x, y in zip(a, b, strict=True))
        return dot / math.sqrt(sum(x * x for x in a)) / math.sqrt(sum(y * y for y in b))

    found = {mid: d for _, mid, d in cosine_top(query, candidates(*vectors), 100)}
    for i, vector in enumerate(vectors):
        assert found[i + 1] == pytest.approx(max(0.0, 1 - cosine(query, vector)), abs=1e-5)


def test_session_index_and_message_id_are_carried_through():
    store = [(2, 41, pack_vector([0.0, 1.0])), (0, 7, pack_vector([1.0, 0.0]))]
    assert [(s, mid) for s, mid, _ in cosine_top([1.0, 0.1], store, 10)] == [(0, 7), (2, 41)]


def test_vectors_of_another_dimension_are_skipped():
    store = [(0, 1, pack_vector([1.0, 0.0, 0.0])), (0, 2, pack_vector([1.0, 0.0])), (0, 3, b"")]
    assert [(s, mid) for s, mid, _ in cosine_top([1.0, 0.0], store, 10)] == [(0, 2)]


def test_no_usable_vector_no_results():
    assert cosine_top([1.0, 0.0], [], 10) == []
    assert cosine_top([1.0, 0.0], [(0, 1, pack_vector([1.0, 0.0, 0.0]))], 10) == []


def test_an_empty_query_matches_nothing():
    assert cosine_top([], candidates([1.0, 0.0]), 10) == []


def test_equal_distances_keep_the_candidates_order():
    store = [
        (1, 9, pack_vector([0.0, 1.0])),
        (0, 3, pack_vector([0.0, 2.0])),
        (0, 1, pack_vector([1.0, 0.0])),
    ]
    assert [(s, mid) for s, mid, _ in cosine_top([1.0, 1.0], store, 10)] == [(1, 9), (0, 3), (0, 1)]


def test_a_zero_query_is_equally_far_from_everything():
    found = cosine_top([0.0, 0.0], candidates([1.0, 0.0], [0.0, 1.0]), 10)
    assert [d for _, _, d in found] == [1.0, 1.0]
