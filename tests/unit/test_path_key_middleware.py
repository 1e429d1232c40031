"""The path-key middleware and the log redaction, without a server."""

from __future__ import annotations

import logging

from app.path_keys import ENVIRON_KEY, PathKeyMiddleware
from config.logging import ContextFilter, redact_path_keys

KEY = "rk_abcdefabcdef_" + "s" * 43


def call(path: str, raw: str | None = None, *, enabled: bool = True) -> dict:
    """The environ the wrapped app receives."""
    seen: dict = {}

    def app(environ, start_response):  # noqa: ANN001, ANN202
        seen.update(environ)
        return [b""]

    environ = {"PATH_INFO": path, "RAW_URI": raw or path, "REQUEST_URI": raw or path}
    PathKeyMiddleware(app, enabled)(environ, lambda *a: None)
    return seen


def test_the_key_moves_from_the_path_into_the_environ():
    seen = call(f"/k/{KEY}/sessions/a/memory", f"/k/{KEY}/sessions/a/memory?x=1")
    assert seen["PATH_INFO"] == "/sessions/a/memory"
    assert seen[ENVIRON_KEY] == KEY
    assert seen["RAW_URI"] == seen["REQUEST_URI"] == "/k/<redacted>/sessions/a/memory?x=1"


def test_other_paths_pass_untouched():
    for path in ("/sessions/k/memory", "/kk/x", "/", "/k"):
        seen = call(path)
        assert seen["PATH_INFO"] == path and ENVIRON_KEY not in seen


def test_a_key_without_a_route_or_an_empty_key_routes_nowhere():
    for path in (f"/k/{KEY}", "/k//sessions", "/k/"):
        seen = call(path)
        assert seen["PATH_INFO"] == "/k/" and ENVIRON_KEY not in seen
        assert KEY not in seen["RAW_URI"]


def test_turned_off_the_key_is_still_taken_out_of_the_path():
    seen = call(f"/k/{KEY}/sessions", enabled=False)
    assert seen["PATH_INFO"] == "/k/" and ENVIRON_KEY not in seen and KEY not in seen["RAW_URI"]


def test_redaction_covers_origin_and_absolute_uris_and_request_lines():
    assert redact_path_keys(f"GET /k/{KEY}/sessions HTTP/1.1") == "GET /k/<redacted>/sessions HTTP/1.1"
    assert redact_path_keys(f"http://h/k/{KEY}?a") == "http://h/k/<redacted>?a"
    assert redact_path_keys("/sessions/a") == "/sessions/a"


def test_log_records_are_redacted_in_message_and_arguments():
    record = logging.LogRecord(
        "gunicorn.error",
        logging.ERROR,
        __file__,
        1,
        "Error handling request %s",
        (f"/k/{KEY}/sessions",),
        None,
    )
    ContextFilter().filter(record)
    assert record.getMessage() == "Error handling request /k/<redacted>/sessions"
    record = logging.LogRecord("x", logging.INFO, __file__, 1, f"GET /k/{KEY}/x", None, None)
    ContextFilter().filter(record)
    assert KEY not in record.getMessage()
