"""Sending a :class:`~recollect_client._calls.Call`: retries, errors, streaming NDJSON.

One sync and one async sender with the same loop: send; on success parse; on a failure the
retry policy allows, wait (``Retry-After`` when the server gave one) and send the very same
request again — same body, same ``Idempotency-Key``.
"""

from __future__ import annotations

import logging
import re
import ssl
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit

import anyio
import httpx

from recollect_client._calls import Call, ExportLine, parse_ndjson_line
from recollect_client._retry import RetryPolicy, parse_retry_after, reached_server
from recollect_client.errors import APIConnectionError, APIStatusError, APITimeoutError, error_for_status

T = TypeVar("T")

VERSION = "0.1.0"

# Module attributes, so tests can replace the waits.
_sleep = time.sleep
_async_sleep = anyio.sleep
_PATH_KEY = re.compile(r"/k/[^/?#]+")

Verify = bool | str | ssl.SSLContext


def redact(url: str) -> str:
    """A URL fit for logs and reprs: a path-scoped key (``/k/<api_key>``, api.md §9) hidden."""
    return _PATH_KEY.sub("/k/***", url)


class _RedactPathKeys(logging.Filter):
    """httpx logs every request's URL at INFO; with a key in the path that URL is a secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact(str(arg)) if isinstance(arg, (str, httpx.URL)) else arg for arg in record.args
            )
        return True


_redaction_installed = False


def _hide_path_keys_from_httpx_logs() -> None:
    global _redaction_installed
    if not _redaction_installed:
        logging.getLogger("httpx").addFilter(_RedactPathKeys())
        _redaction_installed = True


def client_options(
    base_url: str,
    bearer: str | None,
    timeout: float | httpx.Timeout,
    headers: Mapping[str, str] | None,
    verify: Verify,
) -> dict[str, Any]:
    """Keyword arguments for ``httpx.Client`` / ``httpx.AsyncClient``. The base URL keeps its
    path (``/motorhead``, ``/k/rk_...``): httpx joins relative paths under it."""
    if not base_url.startswith(("http://", "https://")):
        raise ValueError("base_url must be an http:// or https:// URL")
    if urlsplit(base_url).path.rstrip("/").endswith("/v1/motorhead"):
        # The hosted API's prefix wraps every body in {"data": ...}: MotorHead's clients
        # expect that, this one reads the plain bodies served at the root or /motorhead.
        raise ValueError("base_url: use the server's root (or /motorhead), not /v1/motorhead")
    if _PATH_KEY.search(base_url):
        _hide_path_keys_from_httpx_logs()
    sent = {"User-Agent": f"recollect-client/{VERSION} httpx/{httpx.__version__}"}
    if bearer:
        sent["Authorization"] = f"Bearer {bearer}"
    sent.update(headers or {})
    return {
        "base_url": base_url.rstrip("/") + "/",
        "headers": sent,
        "timeout": timeout,
        "verify": verify,
        "follow_redirects": False,
    }


def _error(response: httpx.Response) -> APIStatusError:
    return error_for_status(
        response.status_code,
        response.content,
        response.headers,
        retry_after=parse_retry_after(response.headers.get("retry-after")),
        reason=response.reason_phrase,
    )


def _connection_error(error: Exception) -> APIConnectionError:
    # The message names the failure, never the URL: it may hold a path-scoped key.
    kind = APITimeoutError if isinstance(error, httpx.TimeoutException) else APIConnectionError
    detail = str(error) or type(error).__name__
    return kind(f"request failed: {type(error).__name__}: {redact(detail)}")


class _Attempts:
    """The state of one call across its attempts: what to do after each outcome."""

    def __init__(self, call: Call[Any], policy: RetryPolicy) -> None:
        self.call = call
        self.policy = policy
        self.attempt = 0
        self.maybe_done = False  # an earlier attempt may have been processed

    def after_error(self, error: httpx.TransportError) -> float:
        """Seconds to wait before the next attempt, or raises."""
        delay = self.policy.after_error(self.attempt, error, self.call.replay_safe)
        if delay is None:
            raise _connection_error(error) from error
        self.maybe_done = self.maybe_done or reached_server(error)
        self.attempt += 1
        return delay

    def missing_is_success(self, response: httpx.Response) -> bool:
        return response.status_code == 404 and self.call.missing_after_replay and self.maybe_done

    def after_status(self, response: httpx.Response) -> float:
        """Seconds to wait before the next attempt, or raises the response's error."""
        error = _error(response)
        delay = self.policy.after_status(
            self.attempt, response.status_code, error.retry_after, self.call.replay_safe
        )
        if delay is None:
            raise error
        self.attempt += 1
        return delay


def _request(http: httpx.Client | httpx.AsyncClient, call: Call[Any]) -> httpx.Request:
    return http.build_request(
        call.method, call.path, params=call.params, json=call.json, content=call.content, headers=call.headers
    )


class SyncSender:
    def __init__(self, http: httpx.Client, policy: RetryPolicy) -> None:
        self.http = http
        self.policy = policy

    def send(self, call: Call[T]) -> T:
        response = self._open(call, stream=False)
        if response is None:
            return None  # type: ignore[return-value]  # missing_after_replay: done earlier
        return call.parse(response)

    def _open(self, call: Call[Any], *, stream: bool) -> httpx.Response | None:
        attempts = _Attempts(call, self.policy)
        while True:
            try:
                response = self.http.send(_request(self.http, call), stream=stream)
            except httpx.TransportError as error:
                _sleep(attempts.after_error(error))
                continue
            if response.is_success:
                return response
            try:
                response.read()
            finally:
                response.close()
            if attempts.missing_is_success(response):
                return None
            _sleep(attempts.after_status(response))

    def lines(self, call: Call[Any]) -> Iterator[ExportLine]:
        """The NDJSON body, a parsed line at a time (constant memory)."""
        response = self._open(call, stream=True)
        assert response is not None  # noqa: S101 - only deletes tolerate a missing target
        try:
            for line in response.iter_lines():
                parsed = parse_ndjson_line(line)
                if parsed is not None:
                    yield parsed
        finally:
            response.close()


class AsyncSender:
    def __init__(self, http: httpx.AsyncClient, policy: RetryPolicy) -> None:
        self.http = http
        self.policy = policy

    async def send(self, call: Call[T]) -> T:
        response = await self._open(call, stream=False)
        if response is None:
            return None  # type: ignore[return-value]  # missing_after_replay: done earlier
        return call.parse(response)

    async def _open(self, call: Call[Any], *, stream: bool) -> httpx.Response | None:
        attempts = _Attempts(call, self.policy)
        while True:
            try:
                response = await self.http.send(_request(self.http, call), stream=stream)
            except httpx.TransportError as error:
                await _async_sleep(attempts.after_error(error))
                continue
            if response.is_success:
                return response
            try:
                await response.aread()
            finally:
                await response.aclose()
            if attempts.missing_is_success(response):
                return None
            await _async_sleep(attempts.after_status(response))

    async def lines(self, call: Call[Any]) -> AsyncIterator[ExportLine]:
        response = await self._open(call, stream=True)
        assert response is not None  # noqa: S101 - only deletes tolerate a missing target
        try:
            async for line in response.aiter_lines():
                parsed = parse_ndjson_line(line)
                if parsed is not None:
                    yield parsed
        finally:
            await response.aclose()


class ExportStream(Iterator[ExportLine]):
    """Export lines, parsed, read from the network as they are consumed. The request is
    sent on the first ``next()``; use it as a context manager (or consume it fully, or
    call :meth:`close`) to release the connection."""

    def __init__(self, lines: Iterator[ExportLine]) -> None:
        self._lines = lines

    def __iter__(self) -> ExportStream:
        return self

    def __next__(self) -> ExportLine:
        return next(self._lines)

    def close(self) -> None:
        self._lines.close()  # type: ignore[attr-defined]  # a generator

    def __enter__(self) -> ExportStream:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncExportStream(AsyncIterator[ExportLine]):
    """The async :class:`ExportStream`: ``async for`` over it, ``async with`` to release it."""

    def __init__(self, lines: AsyncIterator[ExportLine]) -> None:
        self._lines = lines

    def __aiter__(self) -> AsyncExportStream:
        return self

    async def __anext__(self) -> ExportLine:
        return await self._lines.__anext__()

    async def aclose(self) -> None:
        await self._lines.aclose()  # type: ignore[attr-defined]  # an async generator

    async def __aenter__(self) -> AsyncExportStream:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
