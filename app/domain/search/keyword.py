"""BM25 over the postings of one or many sessions, with NumPy.

A term's postings are packed little-endian ``uint32`` triples (message id, term frequency,
document length), so a whole posting list is one Redis string that NumPy reads without a
copy. Scores are BM25 with the usual ``k1 = 1.2, b = 0.75`` and the non-negative idf
``ln(1 + (N - df + 0.5) / (df + 0.5))``; statistics (N, average length, df) are summed
over every searched session, so a tenant-wide search ranks as one corpus.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

K1 = 1.2
B = 0.75
POSTING = struct.Struct("<III")


def pack_posting(message_id: int, frequency: int, length: int) -> bytes:
    return POSTING.pack(message_id, frequency, length)


@dataclass(frozen=True, slots=True)
class SessionPostings:
    """One session's index statistics and, per query term, its postings (``b""`` if none)."""

    documents: int
    total_length: int
    postings: Sequence[bytes]


def bm25(sessions: Sequence[SessionPostings], terms: int, k: int) -> list[tuple[int, int, float]]:
    """The ``k`` best (session index, message id, score), best first."""
    documents = sum(s.documents for s in sessions)
    if documents <= 0 or terms == 0:
        return []
    average = max(1e-9, sum(s.total_length for s in sessions) / documents)
    keys: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    for term in range(terms):
        arrays = [
            (index, np.frombuffer(s.postings[term], dtype="<u4").reshape(-1, 3))
            for index, s in enumerate(sessions)
            if s.postings[term]
        ]
        frequency_in_documents = sum(len(a) for _, a in arrays)
        if not frequency_in_documents:
            continue
        idf = np.log1p((documents - frequency_in_documents + 0.5) / (frequency_in_documents + 0.5))
        for index, array in arrays:
            ids = array[:, 0].astype(np.int64)
            tf = array[:, 1].astype(np.float64)
            length = array[:, 2].astype(np.float64)
            keys.append((np.int64(index) << 32) | ids)
            scores.append(idf * tf * (K1 + 1) / (tf + K1 * (1 - B + B * length / average)))
    if not keys:
        return []
    unique, inverse = np.unique(np.concatenate(keys), return_inverse=True)
    totals = np.bincount(inverse, weights=np.concatenate(scores))
    best = top(totals, k)
    return [(int(unique[i] >> 32), int(unique[i] & 0xFFFFFFFF), float(totals[i])) for i in best]


def top(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores, highest first; ties go to the earlier position,
    also at the cut-off, so asking for more never reorders the first ``k``."""
    if k <= 0:
        return np.arange(0)
    if len(scores) > k:
        kth_best = np.partition(scores, len(scores) - k)[len(scores) - k]
        candidates = np.flatnonzero(scores >= kth_best)
    else:
        candidates = np.arange(len(scores))
    return candidates[np.lexsort((candidates, -scores[candidates]))][:k]


def keyword_distance(score: float) -> float:
    """BM25 score → a distance: 0 would be an infinitely good match; no match is 1."""
    return 1.0 / (1.0 + score)
