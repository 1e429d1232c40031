"""OpenAPI 3.1, generated from the same pydantic models that validate requests.

Each view declares what it takes and returns with ``@documented(...)``; ``build_spec``
walks the app's URL map, so every registered route — the MotorHead-compatible prefixes
included — appears in the document, and a route without a declaration is a test failure,
not a silent gap. Under ``/v1/motorhead`` successful bodies are documented wrapped in
``{"data": ...}``, as they are served.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flask import Flask
from pydantic import BaseModel

from app.schemas import ErrorOut

F = TypeVar("F", bound=Callable[..., Any])

ERROR_TEXT = {
    400: "Malformed JSON, parameter or session id",
    401: "Missing or invalid credentials",
    403: "Quota exceeded",
    404: "Not found",
    409: "Conflict",
    413: "Body, message or message count too large",
    415: "Content-Type must be application/json",
    422: "Well-formed but invalid fields",
    429: "Rate limited (see Retry-After)",
    503: "Storage unavailable (see Retry-After)",
}
TENANT_ERRORS = (401, 429, 503)
BODY_ERRORS = (400, 413, 415, 422)
ADMIN_ERRORS = (401, 404, 503)


@dataclass(frozen=True)
class RouteDoc:
    summary: str
    tag: str
    ok: tuple[int, type[BaseModel] | None]
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    auth: str = "tenant"  # "tenant" | "admin" | "none"
    headers: dict[str, str] = field(default_factory=dict)  # request header -> description
    content_type: str = "application/json"
    body_content_type: str = "application/json"  # NDJSON bodies: the body model is one line


def documented(
    summary: str,
    *,
    tag: str,
    ok: tuple[int, type[BaseModel] | None],
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    errors: tuple[int, ...] = (),
    auth: str = "tenant",
    headers: dict[str, str] | None = None,
    content_type: str = "application/json",
    body_content_type: str = "application/json",
) -> Callable[[F], F]:
    """``content_type`` / ``body_content_type`` other than JSON (NDJSON): the model given
    for the response or the body describes one line of it."""

    def mark(view: F) -> F:
        view.__openapi__ = RouteDoc(  # type: ignore[attr-defined]
            summary, tag, ok, body, query, errors, auth, headers or {}, content_type, body_content_type
        )
        return view

    return mark


_PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")
_CONVERTER_SCHEMA = {"int": {"type": "integer", "minimum": 0}}


def openapi_path(rule: str) -> str:
    return _PARAM.sub(lambda m: "{" + m.group(2) + "}", rule)


def _path_parameters(rule: str) -> list[dict[str, Any]]:
    params = []
    for converter, name in _PARAM.findall(rule):
        schema = _CONVERTER_SCHEMA.get(converter, {"type": "string"})
        if name == "session_id":
            schema = {
                "type": "string",
                "minLength": 1,
                "description": "1-256 bytes of UTF-8, no control characters",
            }
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    return params


def _query_parameters(model: type[BaseModel], components: dict[str, Any]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    required = set(schema.get("required", ()))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": prop}
        for name, prop in schema.get("properties", {}).items()
    ]


def _ref(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in schema.pop("$defs", {}).items():
        components.setdefault(name, definition)
    components.setdefault(model.__name__, schema)
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _operation(rule: str, doc: RouteDoc, wrapped: bool, components: dict[str, Any]) -> dict[str, Any]:
    status, model = doc.ok
    ok_schema: dict[str, Any] = _ref(model, components) if model else {}
    if wrapped and doc.content_type == "application/json":
        ok_schema = {"type": "object", "required": ["data"], "properties": {"data": ok_schema}}
    if doc.content_type == "application/json":
        ok_content = _json(ok_schema)
    else:
        ok_content = {doc.content_type: {"schema": ok_schema if model else {"type": "string"}}}
    responses: dict[str, Any] = {str(status): {"description": "OK", "content": ok_content}}
    errors = set(doc.errors)
    if doc.auth == "tenant":
        errors |= set(TENANT_ERRORS)
    elif doc.auth == "admin":
        errors |= set(ADMIN_ERRORS)
    if doc.body is not None:
        errors |= set(BODY_ERRORS)
    error_ref = _ref(ErrorOut, components)
    for code in sorted(errors):
        responses[str(code)] = {"description": ERROR_TEXT[code], "content": _json(error_ref)}
    operation: dict[str, Any] = {
        "summary": doc.summary,
        "tags": [doc.tag],
        "parameters": _path_parameters(rule),
        "responses": responses,
    }
    if doc.query is not None:
        operation["parameters"] += _query_parameters(doc.query, components)
    for name, description in doc.headers.items():
        operation["parameters"].append(
            {
                "name": name,
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
                "description": description,
            }
        )
    if doc.body is not None:
        body_content = {doc.body_content_type: {"schema": _ref(doc.body, components)}}
        operation["requestBody"] = {"required": True, "content": body_content}
    if doc.auth == "none":
        operation["security"] = []
    elif doc.auth == "admin":
        operation["security"] = [{"adminToken": []}]
    return operation


def build_spec(app: Flask) -> dict[str, Any]:
    components: dict[str, Any] = {}
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        view = app.view_functions.get(rule.endpoint)
        doc: RouteDoc | None = getattr(view, "__openapi__", None)
        if doc is None:
            continue
        wrapped = rule.rule.startswith("/v1/motorhead/")
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            operation = _operation(rule.rule, doc, wrapped, components)
            operation["operationId"] = f"{method.lower()}_{rule.endpoint.replace('.', '_')}"
            paths.setdefault(openapi_path(rule.rule), {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Recollect",
            "version": "0.1.0",
            "description": (
                "Multi-tenant, MotorHead-compatible chat memory. Every error is "
                '`{"error": {"code", "message"}}` with an `X-Request-ID` header. The memory routes '
                "are also served under `/motorhead` and `/v1/motorhead` (bodies wrapped in "
                '`{"data": ...}` there). For clients that cannot send a header, every tenant '
                "route is also served under `/k/{api_key}` (a path-scoped key: treat such a URL "
                "as a secret)."
            ),
        },
        "components": {
            "schemas": dict(sorted(components.items())),
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "a tenant key, rk_..."},
                "metalApiKey": {"type": "apiKey", "in": "header", "name": "x-metal-api-key"},
                "adminToken": {"type": "http", "scheme": "bearer", "description": "RECOLLECT_ADMIN_TOKEN"},
            },
        },
        "security": [{"apiKey": []}, {"metalApiKey": []}],
        "paths": paths,
    }


def undocumented_rules(app: Flask) -> list[str]:
    """Routes served but missing from the document (the test suite keeps this empty)."""
    exempt = {"static", "docs.page", "docs.assets"}  # the HTML page, not the API
    return sorted(
        rule.rule
        for rule in app.url_map.iter_rules()
        if rule.endpoint not in exempt
        and rule.endpoint.partition(".")[0] != "console"  # the operator's HTML pages
        and getattr(app.view_functions.get(rule.endpoint), "__openapi__", None) is None
    )
