"""Exports as streams of NDJSON lines, read from Redis a page at a time: memory stays
constant whatever a session or a tenant holds."""

from __future__ import annotations

from collections.abc import Iterator

from app.domain.memory.stored_format import message_id
from app.domain.transfer.format import SessionHeader, message_line, session_line
from app.domain.transfer.store import TransferStore

PAGE = 500  # messages per round trip
SESSIONS_PER_STEP = 100


class Exporter:
    def __init__(self, store: TransferStore, *, page: int = PAGE) -> None:
        self._store = store
        self._page = page

    def session(self, tenant_id: str, session_id: str) -> Iterator[bytes] | None:
        """The session's lines; ``None`` when it does not exist. The header is read here,
        the messages as the lines are consumed: ids up to the header's ``last_id``, so a
        session written meanwhile still ends, and a fold meanwhile neither hides nor
        repeats a message (each page is read by one script)."""
        header = self._store.header(tenant_id, session_id)
        if header is None:
            return None
        return self._lines(tenant_id, header)

    def _lines(self, tenant_id: str, header: SessionHeader) -> Iterator[bytes]:
        yield session_line(header)
        after = 0
        while True:
            page = self._store.page(
                tenant_id, header.session_id, after=after, upto=header.last_id, most=self._page
            )
            for raw in page:
                yield message_line(raw)
            if len(page) < self._page:
                return
            after = message_id(page[-1])

    def tenant(self, tenant_id: str) -> Iterator[bytes]:
        """Every session of the tenant, each line group as ``session`` gives it, in the
        index's scan order (a session's line carries its last-write time)."""
        cursor = 0
        while True:
            step = self._store.sessions(tenant_id, cursor=cursor, count=SESSIONS_PER_STEP)
            for session_id in step.session_ids:
                lines = self.session(tenant_id, session_id)
                if lines is not None:  # deleted or expired since it was listed
                    yield from lines
            if step.cursor == 0:
                return
            cursor = step.cursor
