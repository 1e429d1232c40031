"""The asynchronous clients: :class:`AsyncRecollect` and :class:`AsyncRecollectAdmin`, with the
same methods as the sync ones (documented there), as coroutines."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import httpx

from recollect_client import _calls
from recollect_client._calls import MessageLike, PolicyLike
from recollect_client._retry import RetryPolicy
from recollect_client._transport import AsyncExportStream, AsyncSender, Verify, client_options, redact
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


class _AsyncClient:
    def __init__(
        self,
        base_url: str,
        bearer: str | None,
        *,
        timeout: float | httpx.Timeout,
        max_retries: int,
        max_retry_wait: float,
        headers: Mapping[str, str] | None,
        transport: httpx.AsyncBaseTransport | None,
        verify: Verify,
    ) -> None:
        self.base_url = base_url
        options = client_options(base_url, bearer, timeout, headers, verify)
        self._http = httpx.AsyncClient(transport=transport, **options)
        self._sender = AsyncSender(self._http, RetryPolicy(max_retries, max_retry_wait))

    async def close(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({redact(self.base_url)!r})"


class AsyncRecollect(_AsyncClient):
    """The async :class:`~recollect_client.Recollect`: the same options and methods, as
    coroutines (``async with`` closes it). ``transport`` is an ``httpx.AsyncBaseTransport``."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = 10.0,
        max_retries: int = 3,
        max_retry_wait: float = 30.0,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
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

    async def append(
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
        return await self._sender.send(_calls.append(session_id, messages, context, idempotency_key))

    async def get_memory(self, session_id: str) -> Memory:
        """The window (newest first), the running summary and pending counts. A session
        that does not exist reads as empty."""
        return await self._sender.send(_calls.get_memory(session_id))

    async def delete_memory(self, session_id: str) -> None:
        """Erase the session entirely (also fine when it does not exist)."""
        await self._sender.send(_calls.delete_memory(session_id))

    async def list_sessions(self, page: int | None = None, size: int | None = None) -> list[str]:
        """One page (1-based; ``size`` at most 100) of session ids, least recently written first."""
        return await self._sender.send(_calls.list_sessions(page, size))

    async def get_message(self, session_id: str, message_id: int) -> StoredMessage:
        """One message, from the window or the archive (:class:`NotFoundError` if neither)."""
        return await self._sender.send(_calls.get_message(session_id, message_id))

    async def delete_message(self, session_id: str, message_id: int) -> None:
        """Remove one message from the window or the archive, and from search."""
        await self._sender.send(_calls.delete_message(session_id, message_id))

    async def history(
        self, session_id: str, before: int | None = None, limit: int | None = None
    ) -> HistoryPage:
        """One page of the whole history (window and archive), newest first, of messages
        with ids below ``before``; ``limit`` 1-100 (server default 50)."""
        return await self._sender.send(_calls.history(session_id, before, limit))

    async def iter_history(self, session_id: str, *, page_size: int = 100) -> AsyncIterator[StoredMessage]:
        """Every message of the session, newest first, fetched a page at a time."""
        before: int | None = None
        while True:
            page = await self.history(session_id, before=before, limit=page_size)
            for message in page.messages:
                yield message
            if page.next_before is None:
                return
            before = page.next_before

    async def retrieve(
        self, session_id: str, query: str, *, k: int | None = None, mode: SearchMode | None = None
    ) -> list[RetrievalHit]:
        """The ``k`` (server default 10) messages of the session closest to ``query``,
        closest first, over the window and the archive."""
        return await self._sender.send(_calls.retrieve(session_id, query, k, mode))

    async def search(
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
        return await self._sender.send(_calls.search(query, k, mode, session_ids, metadata))

    async def get_context(
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
        return await self._sender.send(_calls.get_context(session_id, model, max_tokens, query, k))

    async def current_key(self) -> CurrentKey:
        """The caller's tenant id and key id."""
        return await self._sender.send(_calls.current_key())

    async def usage(self) -> Usage:
        """The tenant's consumption: sessions, messages, LLM calls and tokens, 429s."""
        return await self._sender.send(_calls.usage())

    def export_session(self, session_id: str) -> AsyncExportStream:
        """The session as export lines (a ``session`` line, then its ``message`` lines,
        oldest first), parsed one at a time as they arrive."""
        return AsyncExportStream(self._sender.lines(_calls.export_session(session_id)))

    async def import_session(
        self, session_id: str, lines: Iterable[Mapping[str, Any] | str | bytes]
    ) -> ImportResult:
        """Restore a session that does not exist yet from export lines (dicts, or raw lines
        read from a file); :class:`ConflictError` ``session_exists`` otherwise."""
        return await self._sender.send(_calls.import_session(session_id, lines))


class AsyncRecollectAdmin(_AsyncClient):
    """The async :class:`~recollect_client.RecollectAdmin`."""

    def __init__(
        self,
        base_url: str,
        admin_token: str,
        *,
        timeout: float | httpx.Timeout = 10.0,
        max_retries: int = 3,
        max_retry_wait: float = 30.0,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
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

    async def create_tenant(
        self, tenant_id: str, *, name: str | None = None, policy: PolicyLike | None = None
    ) -> TenantCreated:
        """Create a tenant and its first key (the secret is in the answer, once)."""
        return await self._sender.send(_calls.create_tenant(tenant_id, name, policy))

    async def list_tenants(self) -> list[Tenant]:
        return await self._sender.send(_calls.list_tenants())

    async def get_tenant(self, tenant_id: str) -> Tenant:
        return await self._sender.send(_calls.get_tenant(tenant_id))

    async def update_tenant(
        self, tenant_id: str, *, name: str | None = None, policy: PolicyLike | None = None
    ) -> Tenant:
        """Change the name or policy fields; a policy field set to None returns to the default."""
        return await self._sender.send(_calls.update_tenant(tenant_id, name, policy))

    async def delete_tenant(self, tenant_id: str) -> TenantDeleted:
        """Delete the tenant and erase all its data."""
        return await self._sender.send(_calls.delete_tenant(tenant_id))

    async def create_key(self, tenant_id: str, *, label: str | None = None) -> KeyCreated:
        return await self._sender.send(_calls.create_key(tenant_id, label))

    async def list_keys(self, tenant_id: str) -> list[KeyInfo]:
        return await self._sender.send(_calls.list_keys(tenant_id))

    async def revoke_key(self, tenant_id: str, key_id: str) -> None:
        """Revoke a key; every server process refuses it within a second."""
        await self._sender.send(_calls.revoke_key(tenant_id, key_id))

    async def tenant_usage(self, tenant_id: str) -> Usage:
        return await self._sender.send(_calls.tenant_usage(tenant_id))

    def export_tenant(self, tenant_id: str) -> AsyncExportStream:
        """Every session of the tenant, as export lines (each session line followed by its
        messages)."""
        return AsyncExportStream(self._sender.lines(_calls.export_tenant(tenant_id)))
