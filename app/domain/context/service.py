"""The context operation as the API offers it: read the session, search its archive when
asked, assemble within the budget."""

from __future__ import annotations

import orjson

from app.domain.context.assembly import Context, assemble
from app.domain.memory.service import validate_session_id
from app.domain.memory.store import SessionStore
from app.domain.search.service import SearchService
from app.domain.tenancy.authentication import Principal

WHOLE_WINDOW = 100_000  # more than any window holds: the pending overflow is included


class ContextService:
    def __init__(self, sessions: SessionStore, search: SearchService) -> None:
        self._sessions = sessions
        self._search = search

    def context(
        self,
        principal: Principal,
        session_id: str,
        *,
        model: str,
        max_tokens: int,
        query: str | None = None,
        k: int = 5,
    ) -> Context:
        validate_session_id(session_id)
        view = self._sessions.read(principal.tenant_id, session_id, limit=WHOLE_WINDOW)
        window = [orjson.loads(raw) for raw in reversed(view.messages_json)]  # oldest first
        relevant = []
        if query is not None:
            # The most relevant messages outside the window: the window is sent anyway.
            in_window = {m["id"] for m in window}
            hits = self._search.retrieve(principal, session_id, query, k=k + len(in_window), mode="auto")
            relevant = [hit.message for hit in hits if hit.message["id"] not in in_window][:k]
        return assemble(view.context, window, model=model, max_tokens=max_tokens, relevant=relevant)
