"""Exact cosine search in the worker: every stored vector of the searched sessions against
the query's, with NumPy. Vectors are stored unit-length as little-endian ``float32``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from app.domain.search.keyword import top


def pack_vector(values: Sequence[float]) -> bytes:
    array = np.asarray(values, dtype=np.float64)
    norm = float(np.linalg.norm(array))
    if norm > 0:
        array = array / norm
    return array.astype("<f4").tobytes()


def cosine_top(
    query: Sequence[float], candidates: Sequence[tuple[int, int, bytes]], k: int
) -> list[tuple[int, int, float]]:
    """The ``k`` nearest (session index, message id, cosine distance), nearest first.
    Vectors of another dimension than the query's (the model changed) are skipped."""
    q = np.frombuffer(pack_vector(query), dtype="<f4")
    usable = [c for c in candidates if len(c[2]) == q.nbytes]
    if not usable:
        return []
    matrix = np.frombuffer(b"".join(c[2] for c in usable), dtype="<f4").reshape(len(usable), -1)
    similarity = matrix @ q
    best = top(similarity, k)
    return [(usable[i][0], usable[i][1], float(max(0.0, 1.0 - similarity[i]))) for i in best]
