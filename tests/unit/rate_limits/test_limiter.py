"""TenantLimiter: flask-limiter as configured, except that a request the store charges
is left alone by flask-limiter's own hook."""

from __future__ import annotations

from flask import Flask, request

from app.rate_limits.limiter import TenantLimiter

from .conftest import limited_app


def _app(handed_over_paths: set[str]) -> tuple[Flask, TenantLimiter]:
    app, limiter = limited_app("2/minute")
    limiter.handed_over = lambda: request.path in handed_over_paths

    @app.get("/charged-elsewhere")
    def charged_elsewhere() -> str:
        return "ok"

    @app.get("/limited")
    def limited() -> str:
        return "ok"

    return app, limiter


def test_a_request_handed_over_is_neither_counted_nor_refused_by_flask_limiter() -> None:
    app, _ = _app({"/charged-elsewhere"})
    client = app.test_client()
    answers = [client.get("/charged-elsewhere") for _ in range(5)]
    assert [r.status_code for r in answers] == [200] * 5
    assert all("X-RateLimit-Limit" not in r.headers for r in answers)
    # The budget is untouched by them: the other route still gets its two requests.
    assert [client.get("/limited").status_code for _ in range(3)] == [200, 200, 429]


def test_other_requests_are_limited_as_flask_limiter_does() -> None:
    app, _ = _app(set())
    client = app.test_client()
    answers = [client.get("/charged-elsewhere") for _ in range(3)]
    assert [r.status_code for r in answers] == [200, 200, 429]
    assert answers[0].headers["X-RateLimit-Limit"] == "2"
    assert answers[1].headers["X-RateLimit-Remaining"] == "0"


def test_without_a_store_to_hand_over_to_every_request_is_limited() -> None:
    app, _ = limited_app("1/minute")
    app.add_url_rule("/x", "x", lambda: "ok")
    client = app.test_client()
    assert [client.get("/x").status_code for _ in range(2)] == [200, 429]
