"""Retries, errors and URLs, deterministically: a scripted server (httpx.MockTransport) and
recorded waits instead of real ones. No network."""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from recollect_client import (
    APIConnectionError,
    APITimeoutError,
    AsyncRecollect,
    ConflictError,
    InternalServerError,
    Message,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    Recollect,
    RecollectAdmin,
    ServiceUnavailableError,
    UnsupportedMediaTypeError,
    ValidationError,
    _transport,
)
from recollect_client._retry import parse_retry_after

OK_APPEND = {"status": "Ok", "message_ids": [1]}
EMPTY_MEMORY = {"messages": [], "context": None, "tokens": 0, "pending_summary": 0, "pending_index": 0}


def error(status: int, code: str, retry_after: str | None = None) -> httpx.Response:
    headers = {"X-Request-ID": f"req-{status}"}
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    return httpx.Response(
        status, json={"error": {"code": code, "message": f"{code} happened"}}, headers=headers
    )


class Script:
    """Answers requests in order from a list: a response, or an exception to raise."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    recorded: list[float] = []

    async def async_wait(seconds: float) -> None:
        recorded.append(seconds)

    monkeypatch.setattr(_transport, "_sleep", recorded.append)
    monkeypatch.setattr(_transport, "_async_sleep", async_wait)
    return recorded


@pytest.fixture
def scripted() -> Callable[..., tuple[Recollect, Script]]:
    clients: list[Recollect] = []

    def make(*answers: httpx.Response | Exception, base_url: str = "http://memory.test", **options) -> tuple:
        script = Script(*answers)
        client = Recollect(base_url, "rk_test", transport=httpx.MockTransport(script), **options)
        clients.append(client)
        return client, script

    yield make
    for client in clients:
        client.close()


def test_429_waits_the_servers_retry_after_then_succeeds(scripted, waits):
    sdk, script = scripted(error(429, "rate_limited", "2"), httpx.Response(200, json=EMPTY_MEMORY))
    assert sdk.get_memory("s").messages == []
    assert waits == [2.0] and len(script.requests) == 2


def test_503_is_retried_and_an_http_date_retry_after_is_understood(scripted, waits):
    later = email.utils.formatdate(time.time() + 3, usegmt=True)
    sdk, _ = scripted(error(503, "store_unavailable", later), httpx.Response(200, json=EMPTY_MEMORY))
    sdk.get_memory("s")
    assert len(waits) == 1 and 1.5 <= waits[0] <= 3.0


def test_retry_after_parsing():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_without_retry_after_the_waits_back_off_exponentially(scripted, waits):
    sdk, _ = scripted(*[error(503, "store_unavailable")] * 3, httpx.Response(200, json=EMPTY_MEMORY))
    sdk.get_memory("s")
    assert len(waits) == 3
    for attempt, wait in enumerate(waits):
        assert 0.25 * 2**attempt <= wait <= 0.5 * 2**attempt


def test_a_zero_retry_after_backs_off_instead_of_resending_at_once(scripted, waits):
    sdk, _ = scripted(error(429, "rate_limited", "0"), httpx.Response(200, json=EMPTY_MEMORY))
    sdk.get_memory("s")
    assert len(waits) == 1 and 0.25 <= waits[0] <= 0.5


def test_gives_up_after_max_retries_with_the_last_error(scripted, waits):
    sdk, script = scripted(*[error(503, "store_unavailable", "1")] * 3, max_retries=2)
    with pytest.raises(ServiceUnavailableError) as caught:
        sdk.get_memory("s")
    assert len(script.requests) == 3 and waits == [1.0, 1.0]
    assert (caught.value.status_code, caught.value.code, caught.value.retry_after) == (
        503,
        "store_unavailable",
        1.0,
    )


def test_a_retry_after_longer_than_max_retry_wait_is_raised_at_once(scripted, waits):
    sdk, script = scripted(error(429, "rate_limited", "120"), max_retry_wait=30)
    with pytest.raises(RateLimitError) as caught:
        sdk.get_memory("s")
    assert caught.value.retry_after == 120.0 and waits == [] and len(script.requests) == 1


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (403, "quota_exceeded", PermissionDeniedError),
        (404, "message_not_found", NotFoundError),
        (409, "session_exists", ConflictError),
        (413, "message_too_large", PayloadTooLargeError),
        (415, "unsupported_media_type", UnsupportedMediaTypeError),
        (422, "invalid_field", ValidationError),
        (500, "internal_error", InternalServerError),
    ],
)
def test_client_and_server_errors_are_not_retried(scripted, waits, status, code, cls):
    sdk, script = scripted(error(status, code))
    with pytest.raises(cls) as caught:
        sdk.get_message("s", 1)
    assert (caught.value.status_code, caught.value.code) == (status, code)
    assert caught.value.message == f"{code} happened" and caught.value.request_id == f"req-{status}"
    assert f"{status} {code}" in str(caught.value) and len(script.requests) == 1


def test_a_proxy_error_page_still_gives_a_usable_error(scripted, waits):
    html = httpx.Response(502, text="<html>Bad Gateway</html>", headers={"Content-Type": "text/html"})
    sdk, _ = scripted(html, max_retries=0)
    with pytest.raises(ServiceUnavailableError) as caught:
        sdk.get_memory("s")
    assert caught.value.code == "http_502" and caught.value.message == "Bad Gateway"


def test_an_append_keeps_its_idempotency_key_across_every_retry(scripted, waits):
    sdk, script = scripted(
        httpx.ReadTimeout("timed out"),
        error(503, "store_unavailable", "0"),
        httpx.RemoteProtocolError("server disconnected"),
        httpx.Response(200, json=OK_APPEND, headers={"Idempotent-Replayed": "true"}),
    )
    result = sdk.append("s", [Message(role="user", content="x")])
    assert result.replayed and result.message_ids == [1]
    keys = {r.headers["Idempotency-Key"] for r in script.requests}
    bodies = {r.content for r in script.requests}
    assert len(script.requests) == 4 and len(keys) == 1 and len(bodies) == 1
    assert uuid.UUID(keys.pop()).version == 4


def test_a_call_that_is_not_replay_safe_is_resent_only_when_it_never_left(waits):
    created = httpx.Response(201, json={"key_id": "k1", "api_key": "rk_new"})
    refused = Script(httpx.ConnectError("connection refused"), created)
    with RecollectAdmin("http://memory.test", "admin", transport=httpx.MockTransport(refused)) as admin:
        assert admin.create_key("acme").key_id == "k1"
    lost = Script(httpx.ReadTimeout("timed out"), created)
    admin = RecollectAdmin("http://memory.test", "admin", transport=httpx.MockTransport(lost))
    with admin, pytest.raises(APITimeoutError):
        admin.create_key("acme")  # a resend could mint a second key nobody sees
    assert len(lost.requests) == 1


def test_a_delete_whose_answer_was_lost_counts_as_done(scripted, waits):
    sdk, _ = scripted(httpx.ReadError("reset"), error(404, "message_not_found"))
    assert sdk.delete_message("s", 3) is None
    sdk, _ = scripted(error(404, "message_not_found"))
    with pytest.raises(NotFoundError):
        sdk.delete_message("s", 3)  # nothing was attempted before: a real 404


def test_connection_errors_give_up_after_max_retries_without_leaking_the_url(waits):
    script = Script(*[httpx.ConnectError("connection refused")] * 3)
    base = "http://memory.test/k/rk_secret123"
    with Recollect(base, transport=httpx.MockTransport(script), max_retries=2) as sdk:
        with pytest.raises(APIConnectionError) as caught:
            sdk.get_memory("s")
        assert "rk_secret123" not in repr(sdk)
    assert len(script.requests) == 3 and "rk_secret123" not in str(caught.value)


def test_httpx_request_log_lines_hide_a_path_scoped_key(scripted, caplog):
    sdk, _ = scripted(httpx.Response(200, json=EMPTY_MEMORY), base_url="http://memory.test/k/rk_secret456")
    with caplog.at_level(logging.INFO, logger="httpx"):
        sdk.get_memory("s")
    assert "/k/***/sessions/s/memory" in caplog.text and "rk_secret456" not in caplog.text


def test_the_base_url_path_is_kept_and_ids_are_encoded_whole(scripted):
    sdk, script = scripted(
        *[httpx.Response(200, json=EMPTY_MEMORY)] * 3, base_url="http://memory.test/k/rk_abc/motorhead/"
    )
    sdk.get_memory("a/b?c#d %")
    sdk.get_memory("..")
    sdk.get_memory("é")
    paths = [r.url.raw_path.decode() for r in script.requests]
    assert paths == [
        "/k/rk_abc/motorhead/sessions/a%2Fb%3Fc%23d%20%25/memory",
        "/k/rk_abc/motorhead/sessions/%2E%2E/memory",
        "/k/rk_abc/motorhead/sessions/%C3%A9/memory",
    ]
    assert all(r.headers["Authorization"] == "Bearer rk_test" for r in script.requests)


def test_an_empty_session_id_is_refused_before_sending(scripted):
    sdk, script = scripted()
    with pytest.raises(ValueError):
        sdk.get_memory("")
    assert script.requests == []


@pytest.mark.parametrize("base_url", ["memory.test", "ftp://memory.test", "http://memory.test/v1/motorhead/"])
def test_a_base_url_the_client_cannot_use_is_refused(base_url):
    with pytest.raises(ValueError):
        Recollect(base_url, "rk_test")


def test_request_bodies_and_parameters(scripted):
    sdk, script = scripted(
        httpx.Response(200, json=[]),
        httpx.Response(200, json=[]),
        httpx.Response(200, json={"messages": [], "next_before": None}),
        httpx.Response(200, json=["a"]),
    )
    sdk.search("release", k=3, session_ids=["a"], metadata={"channel": "web"})
    sdk.retrieve("s", "when", mode="keyword")
    sdk.history("s", before=10)
    sdk.list_sessions(page=2)
    search, retrieve, history, sessions = script.requests
    assert json.loads(search.content) == {
        "text": "release",
        "k": 3,
        "session_ids": ["a"],
        "metadata": {"channel": "web"},
    }
    assert json.loads(retrieve.content) == {"text": "when", "mode": "keyword"}
    assert dict(history.url.params) == {"before": "10"} and dict(sessions.url.params) == {"page": "2"}


def test_an_append_validates_its_messages_before_sending(scripted):
    sdk, script = scripted()
    with pytest.raises(TypeError):
        sdk.append("s", Message(role="user", content="not in a list"))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        sdk.append("s", [{"content": "no role"}])
    assert script.requests == []


def test_the_export_is_read_a_line_at_a_time(scripted):
    produced: list[int] = []

    def body() -> Iterator[bytes]:
        yield b'{"type":"session","session_id":"s"}\n'
        for n in range(1, 1000):
            produced.append(n)
            yield b'{"type":"message","id":%d}\n' % n

    sdk, _ = scripted(httpx.Response(200, content=body(), headers={"Content-Type": "application/x-ndjson"}))
    with sdk.export_session("s") as stream:
        assert next(stream) == {"type": "session", "session_id": "s"}
        assert next(stream) == {"type": "message", "id": 1}
        assert len(produced) < 10  # the rest is still unread
    assert [line["id"] for line in sdk_lines(scripted, body)] == list(range(1, 1000))


def sdk_lines(scripted, body) -> list[dict]:
    sdk, _ = scripted(httpx.Response(200, content=body()))
    return [line for line in sdk.export_session("s") if line["type"] == "message"]


def test_import_sends_ndjson_and_is_not_resent_after_an_ambiguous_failure(scripted, waits):
    imported = {
        "status": "Ok",
        "session_id": "s",
        "messages": 1,
        "window": 1,
        "archived": 0,
        "dropped": 0,
        "last_id": 1,
        "fold_due": False,
    }
    sdk, script = scripted(httpx.Response(201, json=imported))
    lines = [{"type": "session", "session_id": "s"}, '{"type":"message","id":1}', b""]
    assert sdk.import_session("s", lines).model_dump() == imported
    request = script.requests[0]
    assert request.headers["Content-Type"] == "application/x-ndjson"
    assert request.content == b'{"type":"session","session_id":"s"}\n{"type":"message","id":1}\n'
    sdk, script = scripted(httpx.ReadTimeout("timed out"))
    with pytest.raises(APITimeoutError):
        sdk.import_session("s", lines)
    assert len(script.requests) == 1


def test_the_async_client_retries_the_same_way(waits):
    async def run() -> tuple[Script, Script]:
        append = Script(
            httpx.ConnectError("refused"),
            error(429, "rate_limited", "1"),
            httpx.Response(200, json=OK_APPEND),
        )
        async with AsyncRecollect("http://memory.test", "rk", transport=httpx.MockTransport(append)) as sdk:
            assert (await sdk.append("s", [Message(role="user", content="x")])).message_ids == [1]
        failing = Script(*[error(503, "store_unavailable", "1")] * 2)
        async with AsyncRecollect(
            "http://memory.test", "rk", transport=httpx.MockTransport(failing), max_retries=1
        ) as sdk:
            with pytest.raises(ServiceUnavailableError):
                await sdk.get_memory("s")
        return append, failing

    append, failing = asyncio.run(run())
    assert len({r.headers["Idempotency-Key"] for r in append.requests}) == 1 and len(append.requests) == 3
    assert len(failing.requests) == 2 and waits[1:] == [1.0, 1.0]


def test_the_async_export_streams_and_closes(waits):
    async def body():
        yield b'{"type":"session","session_id":"s"}\n{"type":"message","id":1}\n'

    async def run() -> list[dict]:
        transport = httpx.MockTransport(lambda request: httpx.Response(200, content=body()))
        sdk = AsyncRecollect("http://memory.test", "rk", transport=transport)
        async with sdk, sdk.export_session("s") as stream:
            return [line async for line in stream]

    assert asyncio.run(run()) == [{"type": "session", "session_id": "s"}, {"type": "message", "id": 1}]
