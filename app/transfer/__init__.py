"""Export and import of a session (api.md §10): NDJSON out, streamed page by page; NDJSON
in, read line by line and kept only whole.

An import's body may exceed ``MAX_CONTENT_LENGTH`` (RECOLLECT_MAX_BODY_BYTES, sized for
POSTs): it is never held in memory, so it has a limit of its own, the app config's
``IMPORT_MAX_BYTES`` (from ``settings.import_max_bytes`` when set, else 64 MiB).
"""

from __future__ import annotations

from collections.abc import Iterator

from flask import Blueprint, Response, current_app, g, request
from flask.blueprints import BlueprintSetupState

from app.domain.transfer.format import read_lines
from app.domain.transfer.service import max_line_bytes
from app.extensions import Resources
from app.http import UnsupportedMediaType, json_response
from app.openapi import documented
from app.schemas import ImportOut, TransferLine

bp = Blueprint("transfer", __name__)

NDJSON = "application/x-ndjson"
NDJSON_TYPES = frozenset({NDJSON, "application/ndjson", "application/jsonl", "application/x-jsonlines"})
DEFAULT_IMPORT_MAX_BYTES = 64 * 1024 * 1024


@bp.record_once
def _import_limit(state: BlueprintSetupState) -> None:
    settings = state.app.extensions["recollect"].settings
    limit = getattr(settings, "import_max_bytes", None) or DEFAULT_IMPORT_MAX_BYTES
    state.app.config.setdefault("IMPORT_MAX_BYTES", limit)


def _resources() -> Resources:
    return current_app.extensions["recollect"]


def ndjson_response(lines: Iterator[bytes]) -> Response:
    """Stream lines as they come: nothing is gathered, so memory stays constant."""
    return Response(lines, mimetype=NDJSON)


@bp.get("/sessions/<sid:session_id>/export")
@documented(
    "Export the session as NDJSON: its line, then every message (archive and window), oldest first",
    tag="transfer",
    ok=(200, TransferLine),
    errors=(400, 404),
    content_type=NDJSON,
)
def export_session(session_id: str) -> Response:
    return ndjson_response(_resources().transfer.export_session(g.principal.tenant_id, session_id))


@bp.post("/sessions/<sid:session_id>/import")
@documented(
    "Restore a session that does not exist from its export (all or nothing)",
    tag="transfer",
    ok=(201, ImportOut),
    body=TransferLine,
    body_content_type=NDJSON,
    errors=(403, 409),
)
def import_session(session_id: str) -> Response:
    if request.mimetype not in NDJSON_TYPES:
        raise UnsupportedMediaType(f"Content-Type must be {NDJSON}")
    request.max_content_length = current_app.config["IMPORT_MAX_BYTES"]
    lines = read_lines(request.stream, max_line_bytes=max_line_bytes(g.principal))
    result = _resources().transfer.import_session(g.principal, session_id, lines)
    return json_response({"status": "Ok", **result.to_dict()}, 201)
