"""One index pass: lock and read what is not indexed yet → terms and embeddings → commit,
unlock and settle — two Redis round trips besides the embedder's own calls
(``SearchStore.begin_pass`` and ``finish_pass``).

Exactly once, across processes: the pass holds the session's index lock, and the commit
(``finish_index.lua``) advances the index watermark only if it is still where the pass
read it and every message read still exists. A failed embedding call commits nothing: the
messages stay pending and the runner retries with backoff.
"""

from __future__ import annotations

import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable

import orjson

from app.domain.memory.stored_format import api_message
from app.domain.scheduling.locking import run_locked
from app.domain.scheduling.outcome import JobObserver, JobTiming, Outcome, RunResult, backoff, budget_delay
from app.domain.search.embedder import Embedder, EmbeddingError
from app.domain.search.keyword import pack_posting
from app.domain.search.store import IndexCommit, IndexedDocument, SearchStore, Unindexed
from app.domain.search.terms import term_frequencies
from app.domain.search.vectors import pack_vector
from app.domain.tenancy.authentication import Principal
from app.domain.tenancy.usage import UsageLedger

log = logging.getLogger("recollect.jobs")

BATCH = 256  # messages per pass (and per embedding call)


def searchable_text(message: dict) -> str:
    """What a message is found by: its content, and the name and arguments of its tool calls."""
    parts = [str(message.get("content") or "")]
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        parts += [str(function.get("name") or ""), str(function.get("arguments") or "")]
    return "\n".join(p for p in parts if p)


class IndexJob:
    """Indexes a session's new messages; ``run`` returns (outcome, retry delay)."""

    def __init__(
        self,
        store: SearchStore,
        principal_for: Callable[[str], Principal | None],
        usage: UsageLedger,
        embedder: Embedder | None,
        timing: JobTiming,
        *,
        rng: random.Random | None = None,
        observer: JobObserver | None = None,
    ) -> None:
        self._store = store
        self._principal_for = principal_for
        self._usage = usage
        self.embedder = embedder
        self.timing = timing
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self.observer = observer or JobObserver()

    def still_due(self, principal: Principal, session_id: str) -> bool:
        return principal.policy.long_term_memory and self._store.pending(principal.tenant_id, session_id) > 0

    def close(self) -> None:
        if self.embedder is not None:
            self.embedder.close()

    def run(self, tenant_id: str, session_id: str) -> RunResult:
        principal = self._principal_for(tenant_id)
        if principal is None:
            return RunResult(Outcome.GONE)
        if not principal.policy.long_term_memory:
            return RunResult(Outcome.NOTHING)
        return run_locked(
            lambda token: self._store.begin_pass(
                tenant_id, session_id, lock_token=token, lock_seconds=self.timing.lock_seconds, most=BATCH
            ),
            lambda token, batch: self._locked(principal, session_id, token, batch),
            lambda token: self._store.unlock(tenant_id, session_id, token),
        )

    def _locked(self, principal: Principal, session_id: str, token: str, batch: Unindexed) -> RunResult:
        tenant_id = principal.tenant_id
        if batch.last_id <= batch.indexed_to:
            return self._store.finish_pass(tenant_id, session_id, None, lock_token=token).result()
        messages = [orjson.loads(api_message(raw)) for raw in batch.elements]
        texts = [searchable_text(m) for m in messages]
        vectors: list[bytes] = [b""] * len(messages)
        if self.embedder is not None:
            outcome = self._embed(principal, session_id, batch.gen, texts, vectors)
            if outcome is not None:
                self._store.unlock(tenant_id, session_id, token)
                return outcome
        postings: dict[str, bytearray] = defaultdict(bytearray)
        documents = []
        for message, text, vector in zip(messages, texts, vectors, strict=True):
            length, frequencies = term_frequencies(text)
            for term, frequency in frequencies.items():
                postings[term] += pack_posting(int(message["id"]), frequency, length)
            documents.append(
                IndexedDocument(int(message["id"]), " ".join([str(length), *frequencies]), vector)
            )
        index = self._store.vector_index
        if index is not None and any(vectors):
            index.ensure(len(next(v for v in vectors if v)) // 4)
        # A full batch may have left messages out: the watermark stops at the last one read.
        watermark = int(messages[-1]["id"]) if len(messages) == BATCH else batch.last_id
        finished = self._store.finish_pass(
            tenant_id,
            session_id,
            IndexCommit(
                batch.gen,
                batch.indexed_to,
                watermark,
                documents,
                {t: bytes(p) for t, p in postings.items()},
            ),
            lock_token=token,
        )
        # A pass follows nearly every write: its line is DEBUG (failures are WARNING).
        log.debug("index tenant=%s status=%s documents=%d", tenant_id, finished.status, len(documents))
        return finished.result()

    def _embed(
        self, principal: Principal, session_id: str, gen: str, texts: list[str], vectors: list[bytes]
    ) -> RunResult | None:
        """Fill ``vectors`` for the texts that have any; an outcome when the pass must stop."""
        assert self.embedder is not None
        tenant_id, policy = principal.tenant_id, principal.policy
        wanted = [i for i, text in enumerate(texts) if text.strip()]
        if not wanted:
            return None
        budget = policy.summary_token_budget_daily
        deferred = (
            budget_delay(self._usage.tokens_spent_today(tenant_id), budget, self.timing.budget_recheck)
            if budget
            else None
        )
        if deferred is not None:
            return RunResult(Outcome.DEFERRED, deferred)
        started = time.perf_counter()
        try:
            embedded = self.embedder.embed([texts[i] for i in wanted])
        except EmbeddingError as exc:
            failures = self._store.note_failure(tenant_id, session_id, gen=gen, code=exc.code)
            if failures is None:
                return RunResult(Outcome.GONE)
            delay = backoff(failures, exc.retry_after, self.timing, self._rng)
            log.warning(
                "embedding failed tenant=%s code=%s failures=%s retry_in=%.1fs",
                tenant_id,
                exc.code,
                failures,
                delay,
            )
            return RunResult(Outcome.FAILED, delay)
        self.observer.llm(tenant_id, time.perf_counter() - started, embedded.prompt_tokens, 0)
        self._usage.record_llm(tenant_id, calls=1, prompt_tokens=embedded.prompt_tokens, completion_tokens=0)
        for i, vector in zip(wanted, embedded.vectors, strict=True):
            vectors[i] = pack_vector(vector)
        return None
