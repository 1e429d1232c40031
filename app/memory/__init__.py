"""Session memory, MotorHead-compatible: append, read, clear, and single messages."""

from __future__ import annotations

import orjson
from flask import Blueprint, Response, current_app, g, request
from werkzeug.routing import PathConverter

from app.domain.errors import InvalidRequest
from app.extensions import Resources
from app.http import json_response, parse_json_body, parse_query, raw_json_response
from app.openapi import documented
from app.rate_limits import charged_in_store
from app.schemas import (
    AppendOut,
    HistoryOut,
    HistoryQuery,
    MemoryIn,
    MemoryOut,
    MessageOut,
    StatusOut,
)

bp = Blueprint("memory", __name__)

MAX_IDEMPOTENCY_KEY = 255


class SessionIdConverter(PathConverter):
    """A session id is any UTF-8 without control characters (api.md §4), ``/`` included:
    clients send it as ``%2F``, which the WSGI server has already decoded. A control
    character still matches here, so validation can answer 400 rather than routing 404."""

    regex = r"[\s\S]+?"
    part_isolating = False  # werkzeug infers True for a regex without a literal '/'


def _resources() -> Resources:
    return current_app.extensions["recollect"]


@bp.post("/sessions/<sid:session_id>/memory")
@documented(
    "Append messages (and optionally replace the summary)",
    tag="memory",
    ok=(200, AppendOut),
    body=MemoryIn,
    errors=(403,),
    headers={"Idempotency-Key": "a retried POST with the same key (24 h) appends nothing and replays"},
)
@charged_in_store
def append_memory(session_id: str) -> Response:
    body = parse_json_body(MemoryIn)
    idempotency_key = request.headers.get("Idempotency-Key")
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
        raise InvalidRequest(
            f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} characters",
            code="invalid_idempotency_key",
        )
    result = _resources().memory.append(
        g.principal,
        session_id,
        body.messages,
        context=body.context,
        idempotency_key=idempotency_key,
    )
    response = json_response({"status": "Ok", "message_ids": result.ids})
    if result.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@bp.get("/sessions/<sid:session_id>/memory")
@documented(
    "Read the window (newest first) and the running summary", tag="memory", ok=(200, MemoryOut), errors=(400,)
)
@charged_in_store
def read_memory(session_id: str) -> Response:
    memory = _resources().memory.read(g.principal, session_id)
    view = memory.view
    # The stored messages already are their API representation: splice the bytes.
    body = b"".join(
        (
            b'{"messages":[',
            b",".join(view.messages_json),
            b'],"context":',
            orjson.dumps(view.context),
            b',"tokens":%d,"pending_summary":%d,"pending_index":%d}'
            % (view.tokens, memory.pending_summary, memory.pending_index),
        )
    )
    return raw_json_response(body)


@bp.delete("/sessions/<sid:session_id>/memory")
@documented("Erase the session entirely", tag="memory", ok=(200, StatusOut), errors=(400,))
def delete_memory(session_id: str) -> Response:
    _resources().memory.delete(g.principal, session_id)
    return json_response({"status": "Ok"})


@bp.get("/sessions/<sid:session_id>/messages")
@documented(
    "The whole history, window and archive, newest first, paged backwards",
    tag="memory",
    ok=(200, HistoryOut),
    errors=(400,),
    query=HistoryQuery,
)
def read_history(session_id: str) -> Response:
    query = parse_query(HistoryQuery)
    page = _resources().memory.history(g.principal, session_id, before=query.before, limit=query.limit)
    body = b"".join(
        (
            b'{"messages":[',
            b",".join(page.messages_json),
            b'],"next_before":',
            orjson.dumps(page.next_before),
            b"}",
        )
    )
    return raw_json_response(body)


@bp.get("/sessions/<sid:session_id>/messages/<int:message_id>")
@documented(
    "Read one message, from the window or the archive", tag="memory", ok=(200, MessageOut), errors=(400, 404)
)
def read_message(session_id: str, message_id: int) -> Response:
    return raw_json_response(_resources().memory.get_message(g.principal, session_id, message_id))


@bp.delete("/sessions/<sid:session_id>/messages/<int:message_id>")
@documented(
    "Remove one message from the window or the archive, and from search",
    tag="memory",
    ok=(200, StatusOut),
    errors=(400, 404),
)
def delete_message(session_id: str, message_id: int) -> Response:
    _resources().memory.delete_message(g.principal, session_id, message_id)
    return json_response({"status": "Ok"})
