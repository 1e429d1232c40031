"""The console's sign-in: a signed, expiring session cookie and its CSRF token.

The cookie holds ``{"csrf": <random>, "in": true|false}`` signed with a key derived from
the admin token (itsdangerous), so rotating ``RECOLLECT_ADMIN_TOKEN`` signs everyone out
and nothing is kept on the server. A visitor who has not signed in gets a cookie too, so
the sign-in form carries a CSRF token like every other form.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from flask import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE = "recollect_console"
COOKIE_PATH = "/console"
SESSION_SECONDS = 8 * 3600
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    csrf: str
    signed_in: bool

    def csrf_matches(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(presented.encode(), self.csrf.encode())


def _serializer(admin_token: str) -> URLSafeTimedSerializer:
    key = hmac.new(admin_token.encode(), b"recollect console session", hashlib.sha256).digest()
    return URLSafeTimedSerializer(key, salt="console-session")


def new_session(*, signed_in: bool) -> ConsoleSession:
    return ConsoleSession(secrets.token_urlsafe(32), signed_in)


def read_session(request: Request, admin_token: str) -> ConsoleSession | None:
    """The request's session, or None when it has none, a forged one or an expired one."""
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    try:
        data = _serializer(admin_token).loads(raw, max_age=SESSION_SECONDS)
    except BadSignature:  # includes SignatureExpired
        return None
    if not isinstance(data, dict) or not isinstance(data.get("csrf"), str):
        return None
    return ConsoleSession(data["csrf"], data.get("in") is True)


def set_cookie(response: Response, session: ConsoleSession, admin_token: str, *, secure: bool) -> None:
    value = _serializer(admin_token).dumps({"csrf": session.csrf, "in": session.signed_in})
    response.set_cookie(
        COOKIE,
        value,
        max_age=SESSION_SECONDS,
        path=COOKIE_PATH,
        secure=secure,
        httponly=True,
        samesite="Strict",
    )


def clear_cookie(response: Response, *, secure: bool) -> None:
    response.delete_cookie(COOKIE, path=COOKIE_PATH, secure=secure, httponly=True, samesite="Strict")
