"""The caller's sessions, MotorHead's shape: a bare array, least recently written first."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, g

from app.http import json_response, parse_query
from app.openapi import documented
from app.schemas import SessionListOut, SessionsQuery

bp = Blueprint("sessions", __name__)


@bp.get("/sessions")
@documented(
    "List the caller's session ids, least recently written first",
    tag="sessions",
    ok=(200, SessionListOut),
    query=SessionsQuery,
    errors=(400,),
)
def list_sessions() -> Response:
    query = parse_query(SessionsQuery)
    ids = current_app.extensions["recollect"].memory.list_sessions(
        g.principal, page=query.page, size=query.size
    )
    return json_response(ids)
