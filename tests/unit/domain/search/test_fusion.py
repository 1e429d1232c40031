"""Reciprocal rank fusion: 1 / (60 + rank) summed over rankings, as a distance in [0, 1)."""

from __future__ import annotations

import pytest

from app.domain.search.fusion import RRF_C, reciprocal_rank_fusion


def test_the_constant_is_sixty():
    assert RRF_C == 60


def test_one_ranking_keeps_its_order_with_distances_from_the_rank():
    fused = reciprocal_rank_fusion([["a", "b", "c"]], 10)
    assert [item for item, _ in fused] == ["a", "b", "c"]
    # distance = 1 - (1 / (61 + r)) / (1 / 61)
    assert [d for _, d in fused] == pytest.approx([0.0, 1 - 61 / 62, 1 - 61 / 63])


def test_first_in_every_ranking_is_distance_zero():
    fused = reciprocal_rank_fusion([["x", "y"], ["x", "z"], ["x"]], 10)
    assert fused[0] == ("x", 0.0)


def test_first_in_one_of_two_rankings_only_is_distance_one_half():
    fused = dict(reciprocal_rank_fusion([["a"], ["b"]], 10))
    assert fused == {"a": pytest.approx(0.5), "b": pytest.approx(0.5)}


def test_hand_computed_fusion_of_two_rankings():
    # a: 1/61 + 1/62; c: 1/63 + 1/61; b: 1/62.
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["c", "a"]], 10)
    best = 2 / 61
    assert fused == [
        ("a", pytest.approx(1 - (1 / 61 + 1 / 62) / best)),
        ("c", pytest.approx(1 - (1 / 61 + 1 / 63) / best)),
        ("b", pytest.approx(1 - (1 / 62) / best)),
    ]


def test_an_item_in_both_rankings_beats_one_ranked_first_in_only_one():
    fused = reciprocal_rank_fusion([["solo", "both"], ["x", "y", "z", "both"]], 10)
    assert [item for item, _ in fused][:2] == ["both", "solo"]


def test_equal_fused_scores_keep_the_order_items_were_first_seen():
    fused = reciprocal_rank_fusion([["a", "b"], ["b", "a"]], 10)
    assert [item for item, _ in fused] == ["a", "b"]
    assert fused[0][1] == pytest.approx(fused[1][1])


def test_k_keeps_only_the_best():
    assert [item for item, _ in reciprocal_rank_fusion([["a", "b", "c"], ["c", "b"]], 2)] == ["c", "b"]
    assert reciprocal_rank_fusion([["a", "b"]], 0) == []


def test_distances_are_in_zero_to_one_and_grow_down_the_list():
    rankings = [[f"i{n}" for n in range(300)], [f"i{n}" for n in range(299, -1, -3)]]
    fused = reciprocal_rank_fusion(rankings, 1000)
    distances = [d for _, d in fused]
    assert all(0.0 <= d < 1.0 for d in distances)
    assert distances == sorted(distances)
    assert len(fused) == 300


def test_empty_rankings_fuse_to_nothing():
    assert reciprocal_rank_fusion([], 10) == []
    assert reciprocal_rank_fusion([[], []], 10) == []


def test_one_empty_ranking_still_counts_in_the_best_possible_score():
    # Hybrid search with a query of only stopwords: no keyword ranking, vectors only.
    assert reciprocal_rank_fusion([[], ["v"]], 10) == [("v", pytest.approx(0.5))]


def test_items_may_be_any_hashable_such_as_session_and_message_pairs():
    fused = reciprocal_rank_fusion([[(0, 5), (1, 5)], [(1, 5)]], 10)
    assert [item for item, _ in fused] == [(1, 5), (0, 5)]
