"""The rate-limit headers: those of the limit a request was counted against, and a
Retry-After only where a client reads one."""

from __future__ import annotations

import time

import pytest
from flask import Response

from .conftest import limited_app


@pytest.fixture
def client():  # noqa: ANN201 - flask's test client
    app, limiter = limited_app("3/minute")

    @app.get("/exempt")
    @limiter.exempt
    def exempt() -> str:
        return "ok"

    @app.get("/counted")
    def counted() -> str:
        return "ok"

    @app.get("/unavailable")
    def unavailable() -> Response:
        return Response("down", 503, {"Retry-After": "0"})

    return app.test_client()


def test_a_counted_answer_carries_the_limit_what_remains_and_when_it_resets(client) -> None:  # noqa: ANN001
    first, second = client.get("/counted"), client.get("/counted")
    assert first.headers["X-RateLimit-Limit"] == "3"
    assert [first.headers["X-RateLimit-Remaining"], second.headers["X-RateLimit-Remaining"]] == ["2", "1"]
    assert time.time() <= int(first.headers["X-RateLimit-Reset"]) <= time.time() + 61


def test_only_a_refusal_or_an_unavailable_answer_says_when_to_retry(client) -> None:  # noqa: ANN001
    answers = [client.get("/counted") for _ in range(3)]
    assert all("Retry-After" not in r.headers for r in answers)
    refused = client.get("/counted")
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["X-RateLimit-Remaining"] == "0"


def test_an_unavailable_answer_waits_for_the_window_never_zero_seconds(client) -> None:  # noqa: ANN001
    # A 503 that says "0" still gets a wait a client will honour.
    client.get("/counted")
    answer = client.get("/unavailable")
    assert answer.status_code == 503
    assert int(answer.headers["Retry-After"]) >= 1


def test_an_uncounted_answer_has_no_rate_limit_headers(client) -> None:  # noqa: ANN001
    answer = client.get("/exempt")
    assert answer.status_code == 200
    assert not any(name.startswith("X-RateLimit") for name, _ in answer.headers)
