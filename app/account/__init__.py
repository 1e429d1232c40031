"""What the caller's own credentials are (n8n's credential check calls this)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, g

from app.http import json_response
from app.openapi import documented
from app.schemas import KeyCurrentOut, UsageOut

bp = Blueprint("account", __name__)


@bp.get("/keys/current")
@documented("The caller's tenant and key id (n8n's credential check)", tag="account", ok=(200, KeyCurrentOut))
def current_key() -> Response:
    principal = g.principal
    return json_response({"tenant_id": principal.tenant_id, "key_id": principal.key_id})


@bp.get("/usage")
@documented("The caller's consumption, all-time and today (UTC)", tag="account", ok=(200, UsageOut))
def usage() -> Response:
    """The calling tenant's consumption: sessions, messages, LLM calls and tokens, 429s."""
    principal = g.principal
    report = current_app.extensions["recollect"].memory.usage(
        principal.tenant_id, ttl_seconds=principal.policy.session_ttl_seconds
    )
    return json_response(report)
