"""The context to send to a chat model, assembled within a token budget."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, g

from app.http import json_response, parse_query
from app.openapi import documented
from app.schemas import ContextOut, ContextQuery

bp = Blueprint("context", __name__)


@bp.get("/sessions/<sid:session_id>/context")
@documented(
    "The context for a chat model: the summary (and relevant archived messages), then the newest messages",
    tag="memory",
    ok=(200, ContextOut),
    query=ContextQuery,
    errors=(400, 503),
)
def read_context(session_id: str) -> Response:
    query = parse_query(ContextQuery)
    context = current_app.extensions["recollect"].context.context(
        g.principal,
        session_id,
        model=query.model,
        max_tokens=query.max_tokens,
        query=query.query,
        k=query.k,
    )
    return json_response(
        {
            "messages": context.messages,
            "tokens": context.tokens,
            "model": context.model,
            "encoding": context.encoding,
            "omitted": context.omitted,
        }
    )
