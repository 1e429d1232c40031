"""Every failure is JSON of one shape with the right status and a request id (api.md §4)."""

from __future__ import annotations

import signal
import time

import pytest

from tests.conftest import ADMIN, free_port

MESSAGE = {"role": "Human", "content": "hello"}


def assert_error(response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.json
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    if code is not None:
        assert body["error"]["code"] == code
    assert response.headers["X-Request-ID"]
    assert "Traceback" not in response.get_data(as_text=True)


def test_request_id_is_echoed_or_generated(client, tenant):
    echoed = client.get("/sessions", headers=tenant.headers | {"X-Request-ID": "req-123.abc"})
    assert echoed.headers["X-Request-ID"] == "req-123.abc"
    generated = client.get("/sessions", headers=tenant.headers | {"X-Request-ID": "bad id with spaces"})
    assert len(generated.headers["X-Request-ID"]) == 32
    assert client.get("/nowhere").headers["X-Request-ID"]


def test_400_bad_json_and_bad_parameters(client, tenant):
    bad_json = client.post(
        "/sessions/s/memory", data="{not json", headers=tenant.headers, content_type="application/json"
    )
    assert_error(bad_json, 400, "invalid_json")
    assert_error(client.get("/sessions?size=x", headers=tenant.headers), 400, "invalid_parameter")
    assert_error(
        client.post(
            "/sessions/s/memory",
            json={"messages": []},
            headers=tenant.headers | {"Idempotency-Key": "k" * 300},
        ),
        400,
    )


def test_401_404_405(client, tenant):
    assert_error(client.get("/sessions"), 401, "unauthorized")
    assert_error(client.get("/no/such/route", headers=tenant.headers), 404, "not_found")
    assert_error(client.get("/sessions/s/messages/1", headers=tenant.headers), 404, "message_not_found")
    wrong = client.put("/sessions/s/memory", headers=tenant.headers)
    assert_error(wrong, 405, "method_not_allowed")
    assert "POST" in wrong.headers["Allow"]


def test_409_conflict(client, tenant):
    assert_error(client.post("/admin/tenants", json={"id": "acme"}, headers=ADMIN), 409, "tenant_exists")


def test_413_body_too_large(make_app, make_tenant):
    client = make_app(max_body_bytes=2048).test_client()
    tenant = make_tenant()
    body = {"messages": [{"role": "Human", "content": "x" * 4000}]}
    assert_error(
        client.post("/sessions/s/memory", json=body, headers=tenant.headers), 413, "payload_too_large"
    )


def test_413_message_too_large_and_too_many_messages(make_app, make_tenant):
    client = make_app(max_message_bytes=100, max_messages_per_post=3).test_client()
    tenant = make_tenant()
    big = {"messages": [MESSAGE, {"role": "AI", "content": "é" * 51}]}  # 102 bytes
    assert_error(
        client.post("/sessions/s/memory", json=big, headers=tenant.headers), 413, "message_too_large"
    )
    many = {"messages": [MESSAGE] * 4}
    assert_error(
        client.post("/sessions/s/memory", json=many, headers=tenant.headers), 413, "too_many_messages"
    )
    # Nothing of a rejected request was stored.
    assert client.get("/sessions/s/memory", headers=tenant.headers).json["messages"] == []


def test_415_wrong_content_type(client, tenant):
    response = client.post(
        "/sessions/s/memory", data='{"messages": []}', headers=tenant.headers, content_type="text/plain"
    )
    assert_error(response, 415, "unsupported_media_type")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"messages": "not a list"},
        {"messages": [{"role": "Human"}]},
        {"messages": [{"role": 1, "content": "x"}]},
        {"messages": [{"role": "Human", "content": 5}]},
        {"messages": [{"role": "", "content": "x"}]},
        {"messages": [], "context": 3},
        {"messages": [{"role": "Human", "content": "x", "metadata": "nope"}]},
        [1, 2],
        "string",
    ],
)
def test_422_invalid_fields(client, tenant, body):
    response = client.post("/sessions/s/memory", json=body, headers=tenant.headers)
    assert_error(response, 422, "invalid_field")


def test_503_fast_when_redis_is_unreachable(make_app):
    dead = f"redis://127.0.0.1:{free_port()}/0"
    client = make_app(redis_url=dead).test_client()
    started = time.monotonic()
    response = client.get("/sessions", headers={"Authorization": "Bearer rk_" + "a" * 12 + "_" + "b" * 43})
    assert time.monotonic() - started < 2.0
    assert_error(response, 503, "store_unavailable")
    assert response.headers["Retry-After"] == "1"
    ready = client.get("/readyz")
    assert_error(ready, 503, "store_unavailable")
    assert client.get("/healthz").status_code == 200


def test_a_hung_redis_costs_a_request_one_socket_timeout_at_most(make_app, private_redis):
    """Redis paused (a stalled fsync or fork looks the same): the first request meets one
    socket timeout — not one per Redis call it would make (auth, limiter, store, headers) —
    the requests after it fail at once, and service resumes by itself after the pause."""
    timeout = 0.5
    app = make_app(redis_url=private_redis.url, redis_socket_timeout=timeout, rate_limit="1000/second")
    client = app.test_client()
    key = client.post("/admin/tenants", json={"id": "hung"}, headers=ADMIN).json["api_key"]
    headers = {"Authorization": f"Bearer {key}"}
    write = {"json": {"messages": [MESSAGE]}, "headers": headers}
    assert client.post("/sessions/s/memory", **write).status_code == 200

    private_redis.process.send_signal(signal.SIGSTOP)
    timings = []
    for _ in range(3):
        started = time.monotonic()
        response = client.post("/sessions/s/memory", **write)
        timings.append(time.monotonic() - started)
        assert_error(response, 503, "store_unavailable")
        assert response.headers["Retry-After"] == "1"
    private_redis.process.send_signal(signal.SIGCONT)
    assert timings[0] < 2 * timeout, timings
    assert max(timings[1:]) < timeout / 2, timings

    deadline = time.monotonic() + 5
    while client.get("/sessions/s/memory", headers=headers).status_code != 200:
        assert time.monotonic() < deadline, "no recovery after the pause"
        time.sleep(0.1)


def test_the_request_id_is_echoed_on_errors_too(client, tenant):
    for response in (
        client.get("/sessions", headers={"X-Request-ID": "e-401"}),
        client.get("/nowhere", headers={"X-Request-ID": "e-404"}),
        client.put("/sessions/s/memory", headers={"X-Request-ID": "e-405"}),
        client.post("/sessions/s/memory", data="x", headers=tenant.headers | {"X-Request-ID": "e-415"}),
    ):
        assert response.status_code >= 400
        assert response.headers["X-Request-ID"] == f"e-{response.status_code}"


def test_503_on_every_kind_of_request_when_redis_is_down(make_app):
    """Writes, reads in drop-in mode, the admin API and the prefixed routes all fail fast."""
    client = make_app(redis_url=f"redis://127.0.0.1:{free_port()}/0", open_tenant="legacy").test_client()
    requests = (
        ("post", "/sessions/s/memory", {"json": {"messages": [MESSAGE]}}),
        ("get", "/sessions/s/memory", {}),
        ("delete", "/sessions/s/memory", {}),
        ("get", "/admin/tenants", {"headers": ADMIN}),
        ("post", "/v1/motorhead/sessions/s/memory", {"json": {"messages": [MESSAGE]}}),
    )
    for method, path, kwargs in requests:
        started = time.monotonic()
        response = getattr(client, method)(path, **kwargs)
        assert time.monotonic() - started < 2.0, path
        assert_error(response, 503, "store_unavailable")
        assert int(response.headers["Retry-After"]) >= 1


GARBAGE = [
    ("post", "/sessions/s/memory", {"data": b"\xff\xfe\x00", "content_type": "application/json"}),
    (
        "post",
        "/sessions/s/memory",
        {"data": b'{"messages": [{"role": "a", "content": "\\ud800"}]}', "content_type": "application/json"},
    ),
    (
        "post",
        "/sessions/s/memory",
        {"data": b'{"messages": [], "context": 1e999}', "content_type": "application/json"},
    ),
    ("post", "/sessions/s/memory", {"data": b"[" * 5000, "content_type": "application/json"}),
    ("post", "/sessions/s/memory", {"data": b"null", "content_type": "application/json"}),
    ("post", "/sessions/s/memory", {"data": b"", "content_type": "application/json"}),
    ("post", "/sessions/s/memory", {"json": {"messages": [{"role": "x" * 300, "content": "x"}]}}),
    ("post", "/sessions/s/memory", {"json": {"messages": [None]}}),
    ("post", "/sessions/s/memory", {"data": {"messages": "1"}}),  # a form post
    ("get", "/sessions?page=99999999999999999999999", {}),
    ("get", "/sessions?size=-1", {}),
    ("get", "/sessions/s/messages/99999999999999999999999", {}),
    ("delete", "/sessions/s/messages/abc", {}),
    ("post", "/sessions/s/retrieval", {"json": {"text": 5}}),
    ("patch", "/sessions/s/memory", {}),
]


@pytest.mark.parametrize(("method", "path", "kwargs"), GARBAGE)
def test_client_mistakes_are_never_a_500(client, tenant, method, path, kwargs):
    response = getattr(client, method)(path, headers=tenant.headers, **kwargs)
    assert 400 <= response.status_code < 500
    assert_error(response, response.status_code)


def test_integers_in_metadata_round_trip_exactly_or_are_refused_beyond_64_bits(client, tenant):
    edges = {"max": 2**64 - 1, "min": -(2**63), "beyond_2_53": 2**53 + 1, "text": "18446744073709551616"}
    body = {"messages": [{"role": "Human", "content": "ids", "metadata": edges}]}
    assert client.post("/sessions/ints/memory", json=body, headers=tenant.headers).status_code == 200
    stored = client.get("/sessions/ints/memory", headers=tenant.headers).json["messages"][0]["metadata"]
    assert stored == edges and all(type(stored[k]) is type(v) for k, v in edges.items())
    for too_big in (2**64, -(2**63) - 1, 10**30):
        raw = f'{{"messages":[{{"role":"Human","content":"x","metadata":{{"n":{too_big}}}}}]}}'
        refused = client.post(
            "/sessions/ints/memory", data=raw, content_type="application/json", headers=tenant.headers
        )
        assert refused.status_code == 422 and refused.json["error"]["code"] == "integer_out_of_range"
    # Long digit runs inside strings are not integers.
    text = {"messages": [{"role": "Human", "content": "1" * 40}]}
    assert client.post("/sessions/ints/memory", json=text, headers=tenant.headers).status_code == 200
    assert len(client.get("/sessions/ints/memory", headers=tenant.headers).json["messages"]) == 2


def test_a_503_tells_the_client_how_to_retry_a_write_safely(make_app, tenant):
    client = make_app(redis_url="redis://127.0.0.1:1/0", redis_connect_timeout=0.1).test_client()
    response = client.post(
        "/sessions/s/memory", json={"messages": [{"role": "Human", "content": "hi"}]}, headers=tenant.headers
    )
    assert response.status_code == 503
    assert "Idempotency-Key" in response.json["error"]["message"]
