"""Search over long-term memory: one session's retrieval (MotorHead's route) and the
tenant-wide search."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Blueprint, Response, current_app, g

from app.domain.search.service import Hit
from app.http import parse_json_body, raw_json_response
from app.openapi import documented
from app.schemas import RetrievalIn, RetrievalOut, SearchIn, SearchOut

bp = Blueprint("search", __name__)

_HIT_FIELDS = ("role", "content", "id", "created_at", "metadata")


def _render(hit: Hit, *, with_session: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"session_id": hit.session_id} if with_session else {}
    for field in _HIT_FIELDS:
        if field in hit.message:
            body[field] = hit.message[field]
    body["dist"] = round(hit.dist, 6)
    return body


@bp.post("/sessions/<sid:session_id>/retrieval")
@documented(
    "The messages of a session (window and archive) closest to a text",
    tag="search",
    ok=(200, RetrievalOut),
    body=RetrievalIn,
    errors=(400, 503),
)
def retrieval(session_id: str) -> Response:
    body = parse_json_body(RetrievalIn)
    hits = current_app.extensions["recollect"].search.retrieve(
        g.principal, session_id, body.text, k=body.k, mode=body.mode
    )
    return raw_json_response(orjson.dumps([_render(h, with_session=False) for h in hits]))


@bp.post("/search")
@documented(
    "Search across the caller's sessions, optionally some of them and by metadata",
    tag="search",
    ok=(200, SearchOut),
    body=SearchIn,
    errors=(400, 503),
)
def search() -> Response:
    body = parse_json_body(SearchIn)
    hits = current_app.extensions["recollect"].search.search(
        g.principal,
        body.text,
        k=body.k,
        mode=body.mode,
        session_ids=body.session_ids,
        metadata=body.metadata,
    )
    return raw_json_response(orjson.dumps([_render(h, with_session=True) for h in hits]))
