"""The synchronous clients: :class:`Recollect` (a tenant's API) and :class:`RecollectAdmin`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import httpx

from recollect_client import _calls
from recollect_client._calls import MessageLike, PolicyLike
from recollect_client._retry import RetryPolicy
from recollect_client._transport import ExportStream, SyncSender, Verify, client_options, redact
from recollect_client.models import (
    AppendResult,
    Context,
    CurrentKey,
    HistoryPage,
    ImportResult,
    KeyCreated,
    KeyInfo,
    Memory,
    RetrievalHit,
    SearchHit,
    SearchMode,
    StoredMessage,
    Tenant,
    TenantCreated,
    TenantDeleted,
    Usage,
)


class _SyncClient:
    def __init__(
        self,
        base_url: str,
        bearer: str | None,
        *,
        timeout: float | httpx.Timeout,
        max_retries: int,
        max_retry_wait: float,
        headers: Mapping[str, str] | None,
        transport: httpx.BaseTransport | None,
        verify: Verify,
    ) -> None:
        self.base_url = base_url
        options = client_options(base_url, bearer, timeout, headers, verify)
        self._http = httpx.Client(transport=transport, **options)
        self._sender = SyncSender(self._http, RetryPolicy(max_retries, max_retry_wait))

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({redact(self.base_url)!r})"


class Recollect(_SyncClient):
    """A tenant's client.

    ``base_url`` is the server's URL; it may carry a path, which is kept: a
    MotorHead-compatible prefix (``https://host/motorhead``) or a path-scoped key
    (``https://host/k/rk_...``, then leave ``api_key`` None). ``api_key`` is sent as a
    bearer token. Requests time out after ``timeout`` seconds; 429 and 503 answers,
    connection failures and timeouts are retried up to ``max_retries`` times, waiting the
    server's ``Retry-After`` (when it is at most ``max_retry_wait`` seconds) or an
    exponential backoff. Errors raise subclasses of :class:`~recollect_client.RecollectError`.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = 10.0,
        max_retries: int = 3,
        max_retry_wait: float = 30.0,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        verify: Verify = True,
    ) -> None:
        super().__init__(
            base_url,
            api_key,
            timeout=timeout,
            max_retries=max_retries,
            max_retry_wait=max_retry_wait,
            headers=headers,
            transport=transport,
            verify=verify,
        )

    def append(
        self,
        session_id: str,
        messages: Sequence[MessageLike],
        *,
        context: str | None = None,
        idempotency_key: str | None = None,
    ) -> AppendResult:
        """Append messages (the session is created implicitly); ``context`` replaces the
        summary. Every append carries an Idempotency-Key (a fresh uuid4 unless given), the
        same on each retry, so a resent append never stores the messages twice."""
        return self._sender.send(_calls.append(session_id, messages, context, idempotency_key))

    def get_memory(self, session_id: str) -> Memory:
        """The window (newest first), the running summary and pending counts. A session
        that does not exist reads as empty."""
        return self._sender.send(_calls.get_memory(session_id))

    def delete_memory(self, session_id: str) -> None:
        """Erase the session entirely (also fine when it does not exist)."""
        self._sender.send(_calls.delete_memory(session_id))

    def list_sessions(self, page: int | None = None, size: int | None = None) -> list[str]:
        """One page (1-based; ``size`` at most 100) of session ids, least recently written first."""
        return self._sender.send(_calls.list_sessions(page, size))

    def get_message(self, session_id: str, message_id: int) -> StoredMessage:
        """One message, from the window or the archive (:class:`NotFoundError` if neither)."""
        return self._sender.send(_calls.get_message(session_id, message_id))

    def delete_message(self, session_id: str, message_id: int) -> None:
        """Remove one message from the window or the archive, and from search."""
        self._sender.send(_calls.delete_message(session_id, message_id))

    def history(self, session_id: str, before: int | None = None, limit: int | None = None) -> HistoryPage:
        """One page of the whole history (window and archive), newest first, of messages
        with ids below ``before``; ``limit`` 1-100 (server default 50)."""
        return self._sender.send(_calls.history(session_id, before, limit))

    def iter_history(self, session_id: str, *, page_size: int = 100) -> Iterator[StoredMessage]:
        """Every message of the session, newest first, fetched a page at a time."""
        before: int | None = None
        while True:
            page = self.history(session_id, before=before, limit=page_size)
            yield from page.messages
            if page.next_before is None:
                return
            before = page.next_before

    def retrieve(
        self, session_id: str, query: str, *, k: int | None = None, mode: SearchMode | None = None
    ) -> list[RetrievalHit]:
        """The ``k`` (server default 10) messages of the session closest to ``query``,
        closest first, over the window and the archive."""
        return self._sender.send(_calls.retrieve(session_id, query, k, mode))

    def search(
        self,
        query: str,
        *,
        k: int | None = None,
        mode: SearchMode | None = None,
        session_ids: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> list[SearchHit]:
        """Search every session of the tenant (or ``session_ids``), keeping messages whose
        metadata holds every key/value of ``metadata``."""
        return self._sender.send(_calls.search(query, k, mode, session_ids, metadata))

    def get_context(
        self,
        session_id: str,
        *,
        model: str,
        max_tokens: int,
        query: str | None = None,
        k: int | None = None,
    ) -> Context:
        """The context to send to ``model``: the summary (with ``query``, plus the ``k``
        most relevant archived messages) then the newest messages that fit ``max_tokens``."""
        return self._sender.send(_calls.get_context(session_id, model, max_tokens, query, k))

    def current_key(self) -> CurrentKey:
        """The caller's tenant id and key id."""
        return self._sender.send(_calls.current_key())

    def usage(self) -> Usage:
        """The tenant's consumption: sessions, messages, LLM calls and tokens, 429s."""
        return self._sender.send(_calls.usage())

    def export_session(self, session_id: str) -> ExportStream:
        """The session as export lines (a ``session`` line, then its ``message`` lines,
        oldest first), parsed one at a time as they arrive."""
        return ExportStream(self._sender.lines(_calls.export_session(session_id)))

    def import_session(
        self, session_id: str, lines: Iterable[Mapping[str, Any] | str | bytes]
    ) -> ImportResult:
        """Restore a session that does not exist yet from export lines (dicts, or raw lines
        read from a file); :class:`ConflictError` ``session_exists`` otherwise."""
        return self._sender.send(_calls.import_session(session_id, lines))


class RecollectAdmin(_SyncClient):
    """The operator's client for ``/admin`` (bearer ``RECOLLECT_ADMIN_TOKEN``). Same options
    as :class:`Recollect`."""

    def __init__(
        self,
        base_url: str,
        admin_token: str,
        *,
        timeout: float | httpx.Timeout = 10.0,
        max_retries: int = 3,
        max_retry_wait: float = 30.0,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        verify: Verify = True,
    ) -> None:
        super().__init__(
            base_url,
            admin_token,
            timeout=timeout,
            max_retries=max_retries,
            max_retry_wait=max_retry_wait,
            headers=headers,
            transport=transport,
            verify=verify,
        )

    def create_tenant(
        self, tenant_id: str, *, name: str | None = None, policy: PolicyLike | None = None
    ) -> TenantCreated:
        """Create a tenant and its first key (the secret is in the answer, once)."""
        return self._sender.send(_calls.create_tenant(tenant_id, name, policy))

    def list_tenants(self) -> list[Tenant]:
        return self._sender.send(_calls.list_tenants())

    def get_tenant(self, tenant_id: str) -> Tenant:
        return self._sender.send(_calls.get_tenant(tenant_id))

    def update_tenant(
        self, tenant_id: str, *, name: str | None = None, policy: PolicyLike | None = None
    ) -> Tenant:
        """Change the name or policy fields; a policy field set to None returns to the default."""
        return self._sender.send(_calls.update_tenant(tenant_id, name, policy))

    def delete_tenant(self, tenant_id: str) -> TenantDeleted:
        """Delete the tenant and erase all its data."""
        return self._sender.send(_calls.delete_tenant(tenant_id))

    def create_key(self, tenant_id: str, *, label: str | None = None) -> KeyCreated:
        return self._sender.send(_calls.create_key(tenant_id, label))

    def list_keys(self, tenant_id: str) -> list[KeyInfo]:
        return self._sender.send(_calls.list_keys(tenant_id))

    def revoke_key(self, tenant_id: str, key_id: str) -> None:
        """Revoke a key; every server process refuses it within a second."""
        self._sender.send(_calls.revoke_key(tenant_id, key_id))

    def tenant_usage(self, tenant_id: str) -> Usage:
        return self._sender.send(_calls.tenant_usage(tenant_id))

    def export_tenant(self, tenant_id: str) -> ExportStream:
        """Every session of the tenant, as export lines (each session line followed by its
        messages)."""
        return ExportStream(self._sender.lines(_calls.export_tenant(tenant_id)))
