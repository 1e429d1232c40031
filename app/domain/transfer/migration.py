"""Copying a MotorHead deployment into a tenant, a session at a time.

Each session becomes one import (``TransferService.import_records``): the long-term
messages that are not in the window first (the archive: ids from 1, in no known order —
MotorHead kept none — and counted as summarized), then the list, oldest first (the window).
Every message's ``created_at`` is the session's last write (MotorHead stored no times); the
last write also orders the tenant's session list. A session that exists in the tenant
already is skipped, so a second run copies nothing twice; the report says what was
copied, what was skipped and why.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

from app.domain.errors import Conflict, QuotaExceeded, RecollectError
from app.domain.memory.service import validate_session_id
from app.domain.tenancy.authentication import Principal
from app.domain.transfer.format import LineError, MessageRecord, SessionRecord
from app.domain.transfer.importer import ImportResult
from app.domain.transfer.motorhead import MotorheadSession, MotorheadSource, SourceSession
from app.domain.transfer.service import TransferService

LISTED = 20  # session ids the report lists per reason


@dataclass
class MigrationReport:
    dry_run: bool
    copied: list[ImportResult] = field(default_factory=list)
    skipped: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    details: dict[str, str] = field(default_factory=dict)  # session → why, for the listed ones
    unreadable_entries: int = 0

    def skip(self, session_id: str, reason: str, detail: str | None = None) -> None:
        listed = self.skipped[reason]
        listed.append(session_id)
        if detail is not None and len(listed) <= LISTED:
            self.details[session_id] = detail

    def to_dict(self) -> dict[str, object]:
        return {
            "dry_run": self.dry_run,
            "copied": {
                "sessions": len(self.copied),
                "messages": sum(r.messages for r in self.copied),
                "window": sum(r.window for r in self.copied),
                "archived": sum(r.archived for r in self.copied),
                "dropped": sum(r.dropped for r in self.copied),
                "to_summarize": sum(1 for r in self.copied if r.fold_due),
            },
            "skipped": {
                reason: {
                    "count": len(ids),
                    "sessions": [
                        {"session_id": s, **({"why": self.details[s]} if s in self.details else {})}
                        for s in ids[:LISTED]
                    ],
                }
                for reason, ids in sorted(self.skipped.items())
            },
            "unreadable_entries": self.unreadable_entries,
        }


class MotorheadMigration:
    def __init__(
        self, source: MotorheadSource, transfer: TransferService, principal: Principal, *, dry_run: bool
    ) -> None:
        self._source = source
        self._transfer = transfer
        self._principal = principal
        self.report = MigrationReport(dry_run)
        self._long_term: dict[str, list[bytes]] = {}

    def plan(self) -> list[SourceSession]:
        """The sessions to copy; also finds every long-term memory hash (one SCAN)."""
        sessions = self._source.sessions()
        self._long_term = self._source.long_term_keys()
        return sessions

    def copy(self, listed: SourceSession) -> None:
        """Copy one session (or say why not) into the report."""
        session_id = listed.session_id
        try:
            validate_session_id(session_id)
        except RecollectError as exc:
            self.report.skip(session_id.encode("utf-8", "backslashreplace").decode(), exc.code, exc.message)
            return
        if self._transfer.exists(self._principal, session_id):
            self.report.skip(session_id, "exists", "already in the tenant: left as it is")
            return
        session = self._source.read(session_id, self._long_term.get(session_id, ()))
        self.report.unreadable_entries += session.unreadable
        if session.empty:
            self.report.skip(session_id, "empty", "listed, but holds no messages, summary or tokens")
            return
        header = SessionRecord(
            line=0,
            session_id=session_id,
            summary=session.summary,
            tokens=session.tokens,
            created_ms=listed.last_write_ms,
            updated_ms=listed.last_write_ms,
            last_id=0,
            summarized_through=len(session.archive),
        )
        try:
            if not self.report.dry_run:
                self._transfer.check_new(self._principal, session_id)
            result = self._transfer.import_records(
                self._principal,
                session_id,
                header,
                _messages(session, listed.last_write_ms),
                dry_run=self.report.dry_run,
            )
        except Conflict:
            self.report.skip(session_id, "exists", "created in the tenant while copying")
            return
        except QuotaExceeded as exc:
            self.report.skip(session_id, exc.code, exc.message)
            return
        except RecollectError as exc:
            if not isinstance(exc, LineError):
                raise
            self.report.skip(session_id, exc.code, f"message {exc.line}: {exc.reason}")
            return
        self.report.copied.append(result)


def _messages(session: MotorheadSession, created_ms: int | None) -> Iterator[MessageRecord]:
    for number, (role, content) in enumerate([*session.archive, *session.window], start=1):
        yield MessageRecord(number, number, role, content, created_ms)
