"""The console's session cookie: signed with a key derived from the admin token, expiring,
and its CSRF token compared in constant time."""

from __future__ import annotations

import time

from flask import Flask, Response, request

from app.console import signin


def _cookie_for(session: signin.ConsoleSession, token: str, *, secure: bool = False) -> str:
    response = Response()
    signin.set_cookie(response, session, token, secure=secure)
    return response.headers["Set-Cookie"]


def _read(cookie_header: str, token: str) -> signin.ConsoleSession | None:
    value = cookie_header.split(";", 1)[0].split("=", 1)[1]
    with Flask(__name__).test_request_context(headers={"Cookie": f"{signin.COOKIE}={value}"}):
        return signin.read_session(request, token)


def test_the_cookie_round_trips_and_carries_every_flag():
    session = signin.new_session(signed_in=True)
    header = _cookie_for(session, "token-a", secure=True)
    assert _read(header, "token-a") == session
    flags = [part.strip() for part in header.split(";")]
    assert {"HttpOnly", "Secure", "SameSite=Strict", "Path=/console"} <= set(flags)
    assert f"Max-Age={signin.SESSION_SECONDS}" in flags
    assert "Secure" not in _cookie_for(session, "token-a", secure=False)


def test_rotating_the_admin_token_signs_everyone_out():
    header = _cookie_for(signin.new_session(signed_in=True), "token-a")
    assert _read(header, "token-b") is None


def test_a_tampered_or_expired_cookie_is_no_session(monkeypatch):
    header = _cookie_for(signin.new_session(signed_in=True), "token-a")
    name_value = header.split(";", 1)[0]
    assert _read(name_value[:-2] + "xx" + ";", "token-a") is None
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + signin.SESSION_SECONDS + 5)
    assert _read(header, "token-a") is None


def test_each_session_has_its_own_csrf_token_which_must_match_exactly():
    first, second = signin.new_session(signed_in=False), signin.new_session(signed_in=False)
    assert first.csrf != second.csrf and len(first.csrf) >= 32
    assert first.csrf_matches(first.csrf)
    assert not first.csrf_matches(second.csrf)
    assert not first.csrf_matches(None)
    assert not first.csrf_matches("")
