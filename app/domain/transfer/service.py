"""Export and import as the API and the CLI offer them: a session or a whole tenant out as
NDJSON, one session in (all or nothing), a tenant's file in (checked whole first)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from app.domain.errors import Conflict, InvalidRequest, NotFound, QuotaExceeded
from app.domain.memory.service import validate_session_id
from app.domain.memory.store import SessionStore
from app.domain.tenancy.authentication import Principal
from app.domain.transfer.export import Exporter
from app.domain.transfer.format import InvalidLine, MessageRecord, SessionRecord, read_records
from app.domain.transfer.importer import ImportResult, SessionImport
from app.domain.transfer.store import TransferStore

MIN_LINE_BYTES = 1024 * 1024
LISTED = 20  # session ids a report lists


def max_line_bytes(principal: Principal) -> int:
    """The longest line an import reads: room for a message at the tenant's size limit
    with every character escaped, and for its metadata."""
    return max(8 * principal.policy.max_message_bytes, MIN_LINE_BYTES)


@dataclass
class TenantImportReport:
    """What a file's import did (bounded: totals, and the first ``LISTED`` ids)."""

    sessions: int = 0
    messages: int = 0
    archived: int = 0
    dropped: int = 0
    to_summarize: int = 0
    imported: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # existed already: left as they are
    skipped_count: int = 0

    def add(self, result: ImportResult) -> None:
        self.sessions += 1
        self.messages += result.messages
        self.archived += result.archived
        self.dropped += result.dropped
        self.to_summarize += int(result.fold_due)
        if len(self.imported) < LISTED:
            self.imported.append(result.session_id)

    def skip(self, session_id: str) -> None:
        self.skipped_count += 1
        if len(self.skipped) < LISTED:
            self.skipped.append(session_id)

    def to_dict(self) -> dict[str, object]:
        return {
            "imported": {
                "sessions": self.sessions,
                "messages": self.messages,
                "archived": self.archived,
                "dropped": self.dropped,
                "to_summarize": self.to_summarize,
                "first": self.imported,
            },
            "skipped": {"count": self.skipped_count, "reason": "exists", "first": self.skipped},
        }


class TransferService:
    def __init__(self, store: TransferStore, sessions: SessionStore) -> None:
        self._store = store
        self._sessions = sessions
        self._exporter = Exporter(store)

    # --- export ------------------------------------------------------------------------

    def export_session(self, tenant_id: str, session_id: str) -> Iterator[bytes]:
        """The session's lines (``NotFound`` now, before the first line, when it does not
        exist)."""
        validate_session_id(session_id)
        lines = self._exporter.session(tenant_id, session_id)
        if lines is None:
            raise NotFound(f"session {session_id!r} not found", code="session_not_found")
        return lines

    def export_tenant(self, tenant_id: str) -> Iterator[bytes]:
        return self._exporter.tenant(tenant_id)

    # --- import ------------------------------------------------------------------------

    def import_session(self, principal: Principal, session_id: str, lines: Iterable[bytes]) -> ImportResult:
        """One session from its export (its own ``session_id`` line is ignored: the
        caller's wins). Staged as it is read; any bad line, a second session, or the session
        existing leaves nothing behind."""
        validate_session_id(session_id)
        records = read_records(lines)
        header = next(records, None)
        if header is None:
            raise InvalidLine(1, "empty: an import starts with a session line")
        assert isinstance(header, SessionRecord)  # read_records checks the first line
        self.check_new(principal, session_id)
        return self.import_records(principal, session_id, header, self._one_session(records))

    @staticmethod
    def _one_session(records: Iterator[SessionRecord | MessageRecord]) -> Iterator[MessageRecord]:
        for record in records:
            if isinstance(record, SessionRecord):
                raise InvalidLine(
                    record.line,
                    "a second session line: this route imports one session (a tenant's file: the CLI)",
                )
            yield record

    def import_records(
        self,
        principal: Principal,
        session_id: str,
        header: SessionRecord,
        messages: Iterable[MessageRecord],
        *,
        dry_run: bool = False,
    ) -> ImportResult:
        """Stage ``messages`` and commit them as a new session (``dry_run``: check only)."""
        job = SessionImport(
            None if dry_run else self._store, principal.tenant_id, session_id, header, principal.policy
        )
        try:
            for message in messages:
                job.add(message)
            return job.commit()
        except BaseException:
            job.discard()
            raise

    def exists(self, principal: Principal, session_id: str) -> bool:
        return self._store.exists(principal.tenant_id, session_id)

    def check_new(self, principal: Principal, session_id: str) -> None:
        if self._store.exists(principal.tenant_id, session_id):
            raise Conflict(f"session {session_id!r} exists already", code="session_exists")
        policy = principal.policy
        if (
            policy.max_sessions is not None
            and self._sessions.count_sessions(principal.tenant_id, ttl_seconds=policy.session_ttl_seconds)
            >= policy.max_sessions
        ):
            raise QuotaExceeded(f"the tenant's quota of {policy.max_sessions} sessions is reached")

    def check_file(
        self, principal: Principal, lines: Iterable[bytes], *, session_id: str | None = None
    ) -> int:
        """Check a whole file (a tenant's export or a session's) without writing: every
        line, every message against the tenant's policy. Returns how many sessions it holds."""
        sessions = 0
        for header, messages in _sessions_of(read_records(lines)):
            sessions += 1
            if session_id is not None and sessions > 1:
                raise InvalidLine(header.line, "a second session: --session needs a file of one session")
            self.import_records(
                principal, self._session_id(header, session_id), header, messages, dry_run=True
            )
        return sessions

    def import_file(
        self,
        principal: Principal,
        lines: Iterable[bytes],
        *,
        session_id: str | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> TenantImportReport:
        """Import every session of a file checked by ``check_file``; sessions that exist
        already are skipped (so a second run copies nothing twice). Each session is
        committed on its own."""
        report = TenantImportReport()
        for header, messages in _sessions_of(read_records(lines)):
            target = self._session_id(header, session_id)
            if self._store.exists(principal.tenant_id, target):
                report.skip(target)  # its lines are read past
            else:
                self.check_new(principal, target)
                report.add(self.import_records(principal, target, header, messages))
            if progress is not None:
                progress(target)
        return report

    @staticmethod
    def _session_id(header: SessionRecord, override: str | None) -> str:
        session_id = override if override is not None else header.session_id
        if session_id is None:
            raise InvalidLine(header.line, "session_id: required in a tenant's file")
        try:
            return validate_session_id(session_id)
        except InvalidRequest as exc:
            raise InvalidLine(header.line, f"session_id: {exc.message}") from None


def _sessions_of(
    records: Iterator[SessionRecord | MessageRecord],
) -> Iterator[tuple[SessionRecord, Iterator[MessageRecord]]]:
    """Group a record stream by session, streaming: each group's messages must be consumed
    before the next group is asked for."""
    pending: list[SessionRecord] = []

    def messages() -> Iterator[MessageRecord]:
        for record in records:
            if isinstance(record, SessionRecord):
                pending.append(record)
                return
            yield record

    first = next(records, None)
    if first is None:
        return
    assert isinstance(first, SessionRecord)
    pending.append(first)
    while pending:
        header = pending.pop()
        group = messages()
        yield header, group
        for _ in group:  # whatever the consumer left
            pass
