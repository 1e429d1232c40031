"""Search as the API offers it: one session's retrieval (MotorHead's route) and the
tenant-wide search, keyword, vector or hybrid. Takes plain values, raises domain errors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from app.domain.errors import EmbeddingsUnavailable, InvalidRequest
from app.domain.memory.service import validate_session_id
from app.domain.memory.store import SessionStore
from app.domain.search.embedder import Embedder, EmbeddingError
from app.domain.search.fusion import reciprocal_rank_fusion
from app.domain.search.keyword import bm25, keyword_distance
from app.domain.search.store import SearchStore
from app.domain.search.terms import query_terms
from app.domain.search.vectors import cosine_top, pack_vector
from app.domain.tenancy.authentication import Principal
from app.domain.tenancy.usage import UsageLedger

MODES = ("auto", "keyword", "vector", "hybrid")
# With a metadata filter, candidates are ranked in growing batches until k pass it.
CANDIDATES_MAX = 5000

Ranked = tuple[int, int, float]  # (session index, message id, distance)


@dataclass(frozen=True, slots=True)
class Hit:
    session_id: str
    message: dict[str, Any]  # the API's message JSON
    dist: float


class SearchService:
    def __init__(
        self,
        store: SearchStore,
        sessions: SessionStore,
        usage: UsageLedger,
        embedder: Embedder | None,
        *,
        exact_vector_limit: int,
    ) -> None:
        self._store = store
        self._sessions = sessions
        self._usage = usage
        self._embedder = embedder
        self._vector_limit = exact_vector_limit

    @property
    def embeddings(self) -> bool:
        return self._embedder is not None

    def retrieve(self, principal: Principal, session_id: str, text: str, *, k: int, mode: str) -> list[Hit]:
        """The ``k`` messages of one session (window and archive) closest to ``text``."""
        validate_session_id(session_id)
        return self._search(principal, [session_id], text, k=k, mode=mode, metadata=None, filtered=True)

    def search(
        self,
        principal: Principal,
        text: str,
        *,
        k: int,
        mode: str,
        session_ids: Sequence[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> list[Hit]:
        """The same across the caller's sessions (or the given ones among them), keeping
        only messages whose metadata holds every given key/value."""
        if session_ids is None:
            # Most recently written first: the exact vector search's limit keeps those.
            listed = self._sessions.list_sessions(
                principal.tenant_id, offset=0, count=-1, ttl_seconds=principal.policy.session_ttl_seconds
            )
            chosen = list(reversed(listed))
        else:
            chosen = list(dict.fromkeys(validate_session_id(s) for s in session_ids))
        return self._search(
            principal,
            chosen,
            text,
            k=k,
            mode=mode,
            metadata=metadata or None,
            filtered=session_ids is not None,
        )

    # --- ranking -------------------------------------------------------------------------

    def _mode(self, principal: Principal, mode: str) -> str:
        if not principal.policy.long_term_memory:
            raise InvalidRequest("long term memory is disabled", code="long_term_memory_disabled")
        if mode == "auto":
            return "hybrid" if self._embedder is not None else "keyword"
        if mode in ("vector", "hybrid") and self._embedder is None:
            raise InvalidRequest(
                f"mode {mode!r} needs embeddings (RECOLLECT_EMBEDDING_MODEL)",
                code="embeddings_not_configured",
            )
        return mode

    def _search(
        self,
        principal: Principal,
        session_ids: list[str],
        text: str,
        *,
        k: int,
        mode: str,
        metadata: dict[str, Any] | None,
        filtered: bool,
    ) -> list[Hit]:
        """``filtered``: the sessions were named by the caller (else: all of the tenant's)."""
        mode = self._mode(principal, mode)
        if not session_ids:
            return []
        tenant_id = principal.tenant_id
        query_vector = self._embed_query(tenant_id, text) if mode in ("vector", "hybrid") else None
        terms = query_terms(text) if mode in ("keyword", "hybrid") else []
        postings = self._store.postings(tenant_id, session_ids, terms) if terms else []
        index = self._store.vector_index
        exact = query_vector is not None and index is None
        vectors = self._vectors(tenant_id, session_ids) if exact else []
        wanted = k if metadata is None else max(4 * k, 50)
        while True:
            nearest: list[Ranked] = []
            if query_vector is not None:
                if index is not None:
                    position = {s: i for i, s in enumerate(session_ids)}
                    chosen = session_ids if filtered else None
                    found = index.nearest(tenant_id, chosen, pack_vector(query_vector), wanted)
                    nearest = [(position[s], i, d) for s, i, d in found if s in position]
                else:
                    nearest = cosine_top(query_vector, vectors, wanted)
            ranked = self._rank(mode, postings, len(terms), nearest, wanted)
            hits = self._hits(tenant_id, session_ids, ranked, metadata)
            if len(hits) >= k or len(ranked) < wanted or wanted >= CANDIDATES_MAX:
                return hits[:k]
            wanted = min(CANDIDATES_MAX, wanted * 4)

    @staticmethod
    def _rank(mode: str, postings: list, terms: int, nearest: list[Ranked], wanted: int) -> list[Ranked]:
        keyword = (
            [(s, i, keyword_distance(score)) for s, i, score in bm25(postings, terms, wanted)]
            if terms
            else []
        )
        if mode == "keyword":
            return keyword
        if mode == "vector":
            return nearest
        fused = reciprocal_rank_fusion(
            [[(s, i) for s, i, _ in keyword], [(s, i) for s, i, _ in nearest]], wanted
        )
        return [(s, i, dist) for (s, i), dist in fused]

    def _vectors(self, tenant_id: str, session_ids: list[str]) -> list[tuple[int, int, bytes]]:
        """The vectors an exact search compares: whole sessions, most recent first, up to
        the configured limit (always at least the first session)."""
        counts = self._store.vector_counts(tenant_id, session_ids)
        chosen: list[int] = []
        total = 0
        for index, count in enumerate(counts):
            if chosen and total + count > self._vector_limit:
                break
            if count:
                chosen.append(index)
                total += count
        stored = self._store.vectors(tenant_id, [session_ids[i] for i in chosen])
        return [
            (index, mid, vector)
            for index, found in zip(chosen, stored, strict=True)
            for mid, vector in found.items()
        ]

    def _embed_query(self, tenant_id: str, text: str) -> list[float]:
        assert self._embedder is not None
        try:
            embedded = self._embedder.embed([text])
        except EmbeddingError as exc:
            raise EmbeddingsUnavailable(
                "the embedding service is unavailable, retry shortly", retry_after=exc.retry_after
            ) from None
        self._usage.record_llm(tenant_id, calls=1, prompt_tokens=embedded.prompt_tokens, completion_tokens=0)
        return embedded.vectors[0]

    def _hits(
        self, tenant_id: str, session_ids: list[str], ranked: list[Ranked], metadata: dict[str, Any] | None
    ) -> list[Hit]:
        wanted = [(session_ids[s], i) for s, i, _ in ranked]
        found = self._store.messages(tenant_id, wanted)
        hits = []
        for (session_id, message_id), (_, _, dist) in zip(wanted, ranked, strict=True):
            raw = found.get((session_id, message_id))
            if raw is None:  # deleted since it was indexed
                continue
            message = orjson.loads(raw)
            if metadata is not None and not _matches(message.get("metadata"), metadata):
                continue
            hits.append(Hit(session_id, message, dist))
        return hits


def _matches(held: Any, wanted: dict[str, Any]) -> bool:
    """Every wanted key holds the same JSON value: compared as JSON, so ``true`` is not
    ``1`` and ``1`` is not ``1.0`` (Python's ``==`` would say they are)."""
    return isinstance(held, dict) and all(
        key in held
        and orjson.dumps(held[key], option=orjson.OPT_SORT_KEYS)
        == orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        for key, value in wanted.items()
    )
