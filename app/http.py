"""Request parsing and response rendering shared by the blueprints."""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

import orjson
from flask import Response, request
from pydantic import BaseModel, ValidationError

from app.domain.errors import InvalidField, InvalidRequest, RecollectError, TooLarge

ModelT = TypeVar("ModelT", bound=BaseModel)


class UnsupportedMediaType(RecollectError):
    code = "unsupported_media_type"


def json_response(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status=status, mimetype="application/json")


def raw_json_response(body: bytes, status: int = 200) -> Response:
    return Response(body, status=status, mimetype="application/json")


def describe_validation_error(exc: ValidationError) -> str:
    """The one-line message of a 400/422 for a validation failure (the API's and the console's)."""
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "body"
    return f"{loc}: {first['msg']}"


# orjson reads an integer literal beyond 64 bits as a float, silently losing digits; the
# range it reads and writes exactly is refused beyond, rather than changed.
MIN_JSON_INT, MAX_JSON_INT = -(2**63), 2**64 - 1
_LONG_DIGIT_RUN = re.compile(rb"[0-9]{19}")  # shorter literals are always in range


def _has_oversized_integer(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return not MIN_JSON_INT <= value <= MAX_JSON_INT
    if isinstance(value, dict):
        return any(_has_oversized_integer(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_oversized_integer(v) for v in value)
    return False


def _exact_integers_exceed_range(raw: bytes) -> bool:
    """Read again with the standard library, which keeps every integer exact."""
    try:
        return _has_oversized_integer(json.loads(raw))
    except RecursionError:
        raise InvalidField("body: nested too deeply") from None


# What is read and thrown away of a body refused as too large, so that the client, still
# sending, receives the 413 instead of a connection reset (the kernel resets a connection
# closed with unread data). Bodies beyond this are refused without reading them.
DRAIN_MAX_BYTES = 8 * 1024 * 1024
_CHUNK = 64 * 1024


def read_body() -> bytes:
    """The request body, never truncated: past ``request.max_content_length`` it is a 413,
    whether the body announced its length or came chunked (werkzeug would silently cut a
    chunked body at the limit)."""
    limit = request.max_content_length
    if request.content_length is not None or limit is None:
        return request.get_data(cache=False)  # a too-long announced length: werkzeug's 413
    stream = request.environ["wsgi.input"]
    chunks: list[bytes] = []
    size = 0
    while chunk := stream.read(_CHUNK):
        size += len(chunk)
        if size > limit:
            _discard(stream, DRAIN_MAX_BYTES - size)
            raise TooLarge(f"request body larger than {limit} bytes", code="payload_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def _discard(stream: Any, budget: int) -> None:
    while budget > 0 and (chunk := stream.read(min(_CHUNK, budget))):
        budget -= len(chunk)


def drain_refused_body() -> bool:
    """Read and discard the body of a request refused before it was read (a 413 for its
    announced length). False when it is too large to drain: the connection must close."""
    length = request.content_length
    if length is None or length > DRAIN_MAX_BYTES:
        return length is None
    _discard(request.environ["wsgi.input"], length)
    return True


def parse_json_body(model: type[ModelT]) -> ModelT:
    """JSON body → validated model: 415 wrong content type, 413 too large (Flask's
    ``MAX_CONTENT_LENGTH``), 400 malformed JSON, 422 invalid fields."""
    if request.mimetype != "application/json":
        raise UnsupportedMediaType("Content-Type must be application/json")
    raw = read_body()
    try:
        data = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        raise InvalidRequest("request body is not valid JSON", code="invalid_json") from None
    if not isinstance(data, dict):
        raise InvalidField("body: expected a JSON object")
    if _LONG_DIGIT_RUN.search(raw) and _exact_integers_exceed_range(raw):
        raise InvalidField(
            f"integers must be between {MIN_JSON_INT} and {MAX_JSON_INT}; send larger ones as strings",
            code="integer_out_of_range",
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidField(describe_validation_error(exc)) from None


def parse_query(model: type[ModelT]) -> ModelT:
    """Query string → validated model; a bad parameter is a 400 (api.md §2, §4)."""
    try:
        return model.model_validate(request.args.to_dict())
    except ValidationError as exc:
        raise InvalidRequest(describe_validation_error(exc), code="invalid_parameter") from None
