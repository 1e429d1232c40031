"""One session's import: check each message against the tenant's policy, stage it, and
commit the whole session in one script — or keep nothing.

Where the messages go (the window policy, api.md §3 and §8):

* up to ``summarized_through`` (what the summary already covers): the archive with
  long-term memory on; with it off they are not kept (``dropped``), as a fold would have
  dropped them;
* above it: the window, at most ``window_size * WINDOW_FACTOR`` of the newest. A window
  over the policy is marked due for a fold, which summarizes it as if the messages had just
  been posted. Older unsummarized messages beyond that bound go to the archive as they are
  (searchable, in the history, not in the summary) with long-term memory on; with it off
  the import is refused, since they could be kept neither in the window nor the archive.
"""

from __future__ import annotations

import logging
import secrets
from collections import deque
from dataclasses import dataclass

from app.domain.clock import now_ms, utc_day, utc_iso
from app.domain.errors import Conflict
from app.domain.keyspace import Keyspace, StagingRedisKeys
from app.domain.memory.service import counted_message
from app.domain.memory.stored_format import id_prefix, stored_payload
from app.domain.memory.window import overflows
from app.domain.tenancy.policy import EffectivePolicy
from app.domain.transfer.format import InvalidLine, LineTooLarge, MessageRecord, SessionRecord
from app.domain.transfer.scripts import ImportCommit
from app.domain.transfer.store import TransferStore

log = logging.getLogger("recollect")

WINDOW_FACTOR = 4
BATCH = 500  # messages staged per round trip
MAX_ROLE = 256


@dataclass(frozen=True, slots=True)
class ImportResult:
    session_id: str
    messages: int  # stored (window + archived)
    window: int
    archived: int
    dropped: int  # summarized already and long-term memory off: not kept
    last_id: int
    fold_due: bool  # the window is over the policy: a fold will summarize it

    def to_dict(self) -> dict[str, object]:
        return {
            "session_id": self.session_id,
            "messages": self.messages,
            "window": self.window,
            "archived": self.archived,
            "dropped": self.dropped,
            "last_id": self.last_id,
            "fold_due": self.fold_due,
        }


class SessionImport:
    """Feed it one session's message records with ``add``, then ``commit`` (or
    ``discard``). Without a store it only checks (a dry run: ``commit`` writes nothing)."""

    def __init__(
        self,
        store: TransferStore | None,
        tenant_id: str,
        session_id: str,
        header: SessionRecord,
        policy: EffectivePolicy,
        *,
        batch: int = BATCH,
    ) -> None:
        self._store = store
        self._tenant_id = tenant_id
        self._session_id = session_id
        self._header = header
        self._policy = policy
        self._batch = batch
        self._now = now_ms()
        self._staging: StagingRedisKeys | None = (
            store.staging(tenant_id, session_id, secrets.token_hex(8)) if store is not None else None
        )
        self._window_bound = policy.window_size * WINDOW_FACTOR
        # (id, tokens) of the newest unsummarized messages: the window, and the one before.
        self._tail: deque[tuple[int, int]] = deque(maxlen=self._window_bound + 1)
        self._window: list[bytes] = []
        self._archive: list[tuple[int, bytes]] = []
        self._unsummarized = 0
        self._archived = 0
        self._dropped = 0
        self._last_id = 0

    def add(self, record: MessageRecord) -> None:
        policy = self._policy
        if not 1 <= len(record.role) <= MAX_ROLE:
            raise InvalidLine(record.line, f"role: 1-{MAX_ROLE} characters")
        size = len(record.content.encode("utf-8", errors="surrogatepass"))
        if size > policy.max_message_bytes:
            raise LineTooLarge(record.line, f"content exceeds {policy.max_message_bytes} bytes")
        message = counted_message(
            record.role,
            record.content,
            record.metadata,
            model=policy.summary_model,
            name=record.name,
            tool_call_id=record.tool_call_id,
            tool_calls=record.tool_calls,
        )
        created = utc_iso(record.created_ms if record.created_ms is not None else self._now)
        element = id_prefix(record.id) + stored_payload(message, created)
        self._last_id = record.id
        if record.id <= self._header.summarized_through:
            if policy.long_term_memory:
                self._archive.append((record.id, element))
                self._archived += 1
            else:
                self._dropped += 1
        else:
            self._unsummarized += 1
            if self._unsummarized > self._window_bound and not policy.long_term_memory:
                raise InvalidLine(
                    record.line,
                    f"long-term memory is off: at most {self._window_bound} messages above "
                    f"summarized_through ({self._header.summarized_through}) can be imported",
                    code="too_many_unsummarized",
                )
            self._window.append(element)
            self._tail.append((record.id, message.token_count))
        if len(self._window) + len(self._archive) >= self._batch:
            self._flush()

    def _flush(self) -> None:
        if self._store is not None and self._staging is not None:
            self._store.stage(self._staging, window=self._window, archive=self._archive)
        self._window = []
        self._archive = []

    def commit(self) -> ImportResult:
        """Make the session live in one script; ``Conflict`` when it exists by now."""
        self._flush()
        header, policy = self._header, self._policy
        spilled = max(0, self._unsummarized - self._window_bound)
        window = self._unsummarized - spilled
        watermark = self._tail[0][0] if spilled else header.summarized_through
        window_tokens = sum(tokens for _, tokens in list(self._tail)[-window:]) if window else 0
        fold_due = overflows(
            window, window_tokens, window_size=policy.window_size, window_tokens=policy.window_tokens
        )
        last_id = max(header.last_id, self._last_id)
        result = ImportResult(
            self._session_id,
            self._archived + spilled + window,
            window,
            self._archived + spilled,
            self._dropped,
            last_id,
            fold_due,
        )
        if self._store is None or self._staging is None:
            return result
        if spilled:
            self._store.spill(self._staging, spilled)
        now = self._now
        updated = header.updated_ms if header.updated_ms is not None else now
        created = header.created_ms if header.created_ms is not None else updated
        committed = self._store.commit(
            self._tenant_id,
            self._session_id,
            self._staging,
            ImportCommit(
                gen=secrets.token_hex(8),
                created_ms=created,
                updated_ms=updated,
                has_summary="1" if header.summary is not None else "0",
                summary=header.summary or "",
                tokens=header.tokens,
                last_id=last_id,
                watermark=watermark,
                folded=self._archived + self._dropped + spilled,
                window_tokens=window_tokens,
                ttl_seconds=policy.session_ttl_seconds,
                session_id=self._session_id,
                # With a TTL the import is a write: listed (and expiring) from now on.
                index_score=updated if policy.session_ttl_seconds == 0 else now,
                due_member=Keyspace.due_member(self._tenant_id, self._session_id),
                messages=result.messages,
                utc_day=utc_day(now),
                now_seconds=now / 1000,
                # Every id up to last_id is pending for search until a pass: even none stored.
                indexed="1" if policy.long_term_memory and last_id > 0 else "0",
                fold_due="1" if fold_due else "0",
            ),
        )
        if not committed:
            raise Conflict(f"session {self._session_id!r} exists already", code="session_exists")
        return result

    def discard(self) -> None:
        """Drop what was staged (best effort: the staged keys expire anyway)."""
        if self._store is None or self._staging is None:
            return
        try:
            self._store.discard(self._staging)
        except Exception as exc:  # noqa: BLE001 - the import's own error is the one to raise
            log.warning("could not discard a staged import: %s", getattr(exc, "cause", type(exc).__name__))
