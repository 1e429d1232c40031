"""Reciprocal rank fusion of several rankings (Cormack et al., 2009)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

RRF_C = 60


def reciprocal_rank_fusion(rankings: Sequence[Sequence[K]], k: int) -> list[tuple[K, float]]:
    """The ``k`` best items by fused rank, best first, each with a distance in [0, 1): 0 for
    an item ranked first by every ranking."""
    fused: dict[K, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking):
            fused[item] = fused.get(item, 0.0) + 1.0 / (RRF_C + rank + 1)
    best_possible = len(rankings) / (RRF_C + 1)
    ordered = sorted(fused.items(), key=lambda pair: -pair[1])[:k]
    return [(item, 1.0 - score / best_possible) for item, score in ordered]
