"""Every Redis key name Recollect uses, in one place (API keys are ``tenancy.api_keys``).

Layout (``rc`` is the configurable product prefix):

* ``rc:tenants`` — set of tenant ids; ``rc:tenant:<tid>`` — tenant record (hash);
  ``rc:tenant:<tid>:keys`` — the tenant's API key ids; ``rc:key:<key_id>`` — one API key (hash).
* ``rc:{<tid>:<sid>}:w|m|i|l`` — one session: window (list), meta (hash), idempotency
  records (hash), summarization lock (string); with long-term memory also ``:a`` the
  archive of folded messages (sorted set by id), ``:x`` keyword postings (hash), ``:d``
  indexed documents (hash), ``:v`` embeddings (hash) and ``:k`` the index lock (string).
  The braces are a Redis Cluster hash tag, so every key of a session lives in one slot and
  the session's scripts stay single-slot. An import in progress stages its messages under
  ``rc:{<tid>:<sid>}:imp:<nonce>:w|a`` (same tag, an hour's TTL) until it commits.
* ``rc:{<tid>}:sessions|usage`` — tenant-wide keys, in the tenant's own hash tag.
* ``rc:due`` — sorted set of sessions awaiting summarization, scored by due time;
  ``rc:due:index`` — the same for sessions with messages awaiting indexing.

Session ids are percent-encoded (everything but ``A-Za-z0-9._~-``), which is injective and
leaves no ``{``, ``}``, ``:`` or ``*`` in the encoded form, so no id can reach another
session's or tenant's keys and no id can move a key out of its hash tag. Tenant ids are
slugs (``[a-z0-9_-]``), so they carry no separator either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote

# Test ids with ``fullmatch``. ``$`` also matches before a final newline, so ``^...$`` let
# "acme\n" pass for a second tenant; ``\A...\Z`` keeps even ``match``/``search`` exact.
TENANT_ID_RE = re.compile(r"\A[a-z0-9][a-z0-9_-]{0,62}\Z")


def encode_session_id(session_id: str) -> str:
    return quote(session_id, safe="")


def decode_session_id(encoded: str) -> str:
    return unquote(encoded, errors="strict")


@dataclass(frozen=True, slots=True)
class SessionRedisKeys:
    window: str
    meta: str
    idempotency: str
    lock: str
    archive: str
    postings: str
    documents: str
    vectors: str
    index_lock: str

    @property
    def all(self) -> tuple[str, ...]:
        return (
            self.window,
            self.meta,
            self.idempotency,
            self.lock,
            self.archive,
            self.postings,
            self.documents,
            self.vectors,
            self.index_lock,
        )

    @property
    def written(self) -> list[str]:
        """The keys a write of messages touches, in the order append.lua and
        commit_import.lua take them (KEYS[1..7])."""
        return [
            self.window,
            self.meta,
            self.idempotency,
            self.archive,
            self.postings,
            self.documents,
            self.vectors,
        ]

    @property
    def long_lived(self) -> tuple[str, ...]:
        """The keys that live as long as the session (its TTL is set on all of them)."""
        return (self.window, self.meta, self.archive, self.postings, self.documents, self.vectors)


@dataclass(frozen=True, slots=True)
class StagingRedisKeys:
    window: str
    archive: str


class Keyspace:
    def __init__(self, prefix: str = "rc") -> None:
        self.prefix = prefix
        self.tenants = f"{prefix}:tenants"
        self.due = f"{prefix}:due"
        self.index_due = f"{prefix}:due:index"

    def tenant(self, tenant_id: str) -> str:
        return f"{self.prefix}:tenant:{tenant_id}"

    def tenant_api_keys(self, tenant_id: str) -> str:
        return f"{self.prefix}:tenant:{tenant_id}:keys"

    def api_key(self, key_id: str) -> str:
        return f"{self.prefix}:key:{key_id}"

    def session(self, tenant_id: str, session_id: str) -> SessionRedisKeys:
        tag = f"{self.prefix}:{{{tenant_id}:{encode_session_id(session_id)}}}"
        return SessionRedisKeys(
            *(f"{tag}:{suffix}" for suffix in ("w", "m", "i", "l", "a", "x", "d", "v", "k"))
        )

    def staging(self, tenant_id: str, session_id: str, nonce: str) -> StagingRedisKeys:
        """Where an import stages a session's window and archive before it commits them."""
        tag = f"{self.prefix}:{{{tenant_id}:{encode_session_id(session_id)}}}"
        return StagingRedisKeys(f"{tag}:imp:{nonce}:w", f"{tag}:imp:{nonce}:a")

    def sessions_index(self, tenant_id: str) -> str:
        return f"{self.prefix}:{{{tenant_id}}}:sessions"

    def usage(self, tenant_id: str) -> str:
        return f"{self.prefix}:{{{tenant_id}}}:usage"

    def tenant_data_patterns(self, tenant_id: str) -> tuple[str, ...]:
        """SCAN patterns matching every data key of one tenant: sessions, tenant-wide keys,
        and the rate limiter's counters (flask-limiter's own key format, under our prefix).

        ``{`` and ``}`` are literal in Redis globs; tenant ids contain no glob characters.
        """
        return (
            f"{self.prefix}:{{{tenant_id}:*",
            f"{self.prefix}:{{{tenant_id}}}:*",
            f"{self.prefix}:vec:{{{tenant_id}:*",
            f"LIMITS:{{LIMITER/{self.rate_limit_prefix}/t:{tenant_id}/*",
        )

    @property
    def rate_limit_prefix(self) -> str:
        return f"{self.prefix}:rl"

    # Members of the due set name a session across tenants: "<tid>:<encoded sid>" is
    # unambiguous because tenant ids never contain ':'.
    @staticmethod
    def due_member(tenant_id: str, session_id: str) -> str:
        return f"{tenant_id}:{encode_session_id(session_id)}"

    @staticmethod
    def parse_due_member(member: str) -> tuple[str, str]:
        tenant_id, _, encoded = member.partition(":")
        return tenant_id, decode_session_id(encoded)
