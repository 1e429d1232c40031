"""The SDK against the server's own OpenAPI document (GET /openapi.json, generated from
``app/schemas.py``): every model field and type, every route covered by a method of both
clients, every request field reachable. A change on either side that is not made on the
other fails here."""

from __future__ import annotations

import inspect
import re
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, TypeAdapter

from recollect_client import (
    AsyncRecollect,
    AsyncRecollectAdmin,
    Recollect,
    RecollectAdmin,
    models,
)

# SDK model -> the server's schema of the same thing.
PAIRS: dict[type[BaseModel], str] = {
    models.ToolFunction: "ToolFunction",
    models.ToolCall: "ToolCall",
    models.Message: "MessageIn",
    models.StoredMessage: "MessageOut",
    models.AppendResult: "AppendOut",
    models.Memory: "MemoryOut",
    models.HistoryPage: "HistoryOut",
    models.RetrievalHit: "RetrievalHit",
    models.SearchHit: "SearchHit",
    models.ContextMessage: "ContextMessage",
    models.Context: "ContextOut",
    models.CurrentKey: "KeyCurrentOut",
    models.UsageCounter: "UsageCounter",
    models.Usage: "UsageOut",
    models.Tenant: "TenantOut",
    models.TenantEnvelope: "TenantEnvelope",
    models.TenantList: "TenantListOut",
    models.TenantCreated: "TenantCreatedOut",
    models.TenantDeleted: "TenantDeletedOut",
    models.KeyCreated: "KeyCreatedOut",
    models.KeyInfo: "KeyInfoOut",
    models.KeyList: "KeyListOut",
    models.ImportResult: "ImportOut",
}
# Schemas of routes that land separately (export/import, api.md §10): until the server
# documents them, their models have nothing to be compared with.
NOT_YET_SERVED = {"ImportOut"}
# Fields the SDK adds from elsewhere than the body (AppendResult.replayed: a header).
CLIENT_ONLY = {(models.AppendResult, "replayed")}
# Where the server documents plain objects that the SDK types: (server schema, field).
TYPED_BY_SDK = {("MessageOut", "tool_calls")}

NDJSON = "ndjson"
# (method, path) -> (SDK method, the type the SDK reads the answer as; None: ignored status).
ROUTES: dict[tuple[str, str], tuple[str, Any]] = {
    ("post", "/sessions/{session_id}/memory"): ("append", models.AppendResult),
    ("get", "/sessions/{session_id}/memory"): ("get_memory", models.Memory),
    ("delete", "/sessions/{session_id}/memory"): ("delete_memory", None),
    ("get", "/sessions"): ("list_sessions", list[str]),
    ("get", "/sessions/{session_id}/messages/{message_id}"): ("get_message", models.StoredMessage),
    ("delete", "/sessions/{session_id}/messages/{message_id}"): ("delete_message", None),
    ("get", "/sessions/{session_id}/messages"): ("history", models.HistoryPage),
    ("post", "/sessions/{session_id}/retrieval"): ("retrieve", list[models.RetrievalHit]),
    ("post", "/search"): ("search", list[models.SearchHit]),
    ("get", "/sessions/{session_id}/context"): ("get_context", models.Context),
    ("get", "/keys/current"): ("current_key", models.CurrentKey),
    ("get", "/usage"): ("usage", models.Usage),
    ("get", "/sessions/{session_id}/export"): ("export_session", NDJSON),
    ("post", "/sessions/{session_id}/import"): ("import_session", models.ImportResult),
    ("post", "/admin/tenants"): ("create_tenant", models.TenantCreated),
    ("get", "/admin/tenants"): ("list_tenants", models.TenantList),
    ("get", "/admin/tenants/{tenant_id}"): ("get_tenant", models.TenantEnvelope),
    ("patch", "/admin/tenants/{tenant_id}"): ("update_tenant", models.TenantEnvelope),
    ("delete", "/admin/tenants/{tenant_id}"): ("delete_tenant", models.TenantDeleted),
    ("post", "/admin/tenants/{tenant_id}/keys"): ("create_key", models.KeyCreated),
    ("get", "/admin/tenants/{tenant_id}/keys"): ("list_keys", models.KeyList),
    ("delete", "/admin/tenants/{tenant_id}/keys/{key_id}"): ("revoke_key", None),
    ("get", "/admin/tenants/{tenant_id}/usage"): ("tenant_usage", models.Usage),
    ("get", "/admin/tenants/{tenant_id}/export"): ("export_tenant", NDJSON),
}
# A request field's SDK parameter when the names differ.
RENAMED = {"text": "query", "Idempotency-Key": "idempotency_key"}
# Request fields the SDK leaves out on purpose.
NOT_SENT = {
    ("get", "/sessions", "namespace"): "accepted for MotorHead compatibility; the server ignores it",
}
POLICY_BODIES = {"TenantCreate", "TenantPatch"}  # their policy fields travel as TenantPolicy
_PREFIX = re.compile(r"^(/k/\{[^}]+\})?(/v1/motorhead|/motorhead)?(?=/)")


@pytest.fixture(scope="module")
def spec(live) -> dict[str, Any]:
    response = httpx.get(f"{live.url}/openapi.json", timeout=10)
    response.raise_for_status()
    return response.json()


@pytest.fixture(scope="module")
def operations(spec) -> dict[tuple[str, str], dict[str, Any]]:
    """Every authenticated operation once, under its canonical path (the MotorHead prefixes
    and path-scoped keys serve the same operations)."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if operation.get("security") == []:  # public: /, /healthz, /openapi.json...
                continue
            found.setdefault((method, _PREFIX.sub("", path)), operation)
    return found


def shape(schema: dict[str, Any], defs: dict[str, Any], names: dict[str, str]) -> Any:
    """A schema reduced to what a client depends on: types, nullability, literal values,
    and which model a reference names (mapped through ``names``). Constraints, titles and
    descriptions are left out."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        target = defs[name]
        if "properties" not in target:  # a root model (a bare array) or an enum: inline it
            return shape(target, defs, names)
        return ("model", names.get(name, name))
    if "anyOf" in schema:
        return ("anyOf", *sorted((shape(s, defs, names) for s in schema["anyOf"]), key=repr))
    if "const" in schema:
        return ("const", schema["const"])
    if "enum" in schema:
        return ("enum", *sorted(schema["enum"]))
    kind = schema.get("type")
    if kind == "array":
        return ("array", shape(schema.get("items", {}), defs, names))
    if kind == "object":
        extra = schema.get("additionalProperties")
        return ("object", shape(extra, defs, names) if isinstance(extra, dict) else None)
    return (kind or "any",)


def fields(schema: dict[str, Any], defs: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    required = set(schema.get("required", ()))
    return {
        name: (shape(prop, defs, names), name in required)
        for name, prop in schema.get("properties", {}).items()
    }


SDK_NAMES = {cls.__name__: server for cls, server in PAIRS.items()}


def sdk_schema(tp: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    schema = TypeAdapter(tp).json_schema()
    return schema, schema.get("$defs", {})


@pytest.mark.parametrize("sdk_model", list(PAIRS), ids=lambda m: m.__name__)
def test_each_model_has_the_servers_fields_and_types(spec, sdk_model):
    components = spec["components"]["schemas"]
    server_name = PAIRS[sdk_model]
    if server_name not in components and server_name in NOT_YET_SERVED:
        pytest.skip(f"this server does not document {server_name} yet")
    assert server_name in components, f"the server no longer documents {server_name}"
    server = fields(components[server_name], components, {})
    schema, defs = sdk_schema(sdk_model)
    ours = fields(schema, defs, SDK_NAMES)
    for cls, field in CLIENT_ONLY:
        if cls is sdk_model:
            ours.pop(field)
    for typed_schema, field in TYPED_BY_SDK:
        if typed_schema == server_name:
            assert server[field][0] == ("anyOf", ("array", ("object", None)), ("null",))
            ours[field] = server[field]
    assert ours == server


def test_tenant_policy_has_every_policy_field_of_the_admin_bodies(spec):
    components = spec["components"]["schemas"]
    schema, defs = sdk_schema(models.TenantPolicy)
    ours = fields(schema, defs, {})
    assert fields(components["TenantCreate"], components, {}).keys() - ours.keys() == {"id", "name"}
    patch = fields(components["TenantPatch"], components, {})
    patch.pop("name")
    assert ours == patch


def test_every_operation_is_a_method_of_both_clients_reading_the_documented_answer(spec, operations):
    components = spec["components"]["schemas"]
    missing = sorted(set(operations) - set(ROUTES))
    assert not missing, f"routes the SDK does not cover: {missing}"
    for (method, path), operation in operations.items():
        name, answer = ROUTES[(method, path)]
        classes = (
            (RecollectAdmin, AsyncRecollectAdmin)
            if path.startswith("/admin")
            else (Recollect, AsyncRecollect)
        )
        for cls in classes:
            assert callable(getattr(cls, name, None)), f"{cls.__name__}.{name} ({method.upper()} {path})"
        status, response = next((s, r) for s, r in operation["responses"].items() if s.startswith("2"))
        content = response.get("content", {})
        if answer is NDJSON:
            assert "application/json" not in content, f"{method.upper()} {path} is not NDJSON any more"
            continue
        server = shape(content["application/json"]["schema"], components, {})
        if answer is None:
            assert server == ("model", "StatusOut"), f"{method.upper()} {path} now answers {server}"
            continue
        schema, defs = sdk_schema(answer)
        ours = (
            ("model", SDK_NAMES[schema["title"]])
            if "properties" in schema
            else shape(schema, defs, SDK_NAMES)
        )
        assert ours == server, f"{method.upper()} {path} ({status})"


def test_every_request_field_is_a_parameter_of_the_method(spec, operations):
    components = spec["components"]["schemas"]
    policy_fields = set(models.TenantPolicy.model_fields)
    for (method, path), operation in operations.items():
        if (method, path) not in ROUTES:
            continue  # reported by the coverage test
        name = ROUTES[(method, path)][0]
        inputs = [p["name"] for p in operation.get("parameters", [])]
        body = operation.get("requestBody", {}).get("content", {}).get("application/json")
        body_name = None
        if body is not None:
            body_name = body["schema"]["$ref"].rsplit("/", 1)[1]
            inputs += list(components[body_name]["properties"])
        sync_cls, async_cls = (
            (RecollectAdmin, AsyncRecollectAdmin)
            if path.startswith("/admin")
            else (Recollect, AsyncRecollect)
        )
        parameters = inspect.signature(getattr(sync_cls, name)).parameters
        for field in inputs:
            if (method, path, field) in NOT_SENT:
                continue
            if body_name in POLICY_BODIES and field in policy_fields:
                assert "policy" in parameters
                continue
            expected = {"id": "tenant_id"}.get(field, field) if body_name == "TenantCreate" else field
            expected = RENAMED.get(expected, expected)
            assert expected in parameters, (
                f"{sync_cls.__name__}.{name} has no {expected!r} ({field} of {path})"
            )
        assert list(parameters) == list(inspect.signature(getattr(async_cls, name)).parameters)


def test_both_clients_have_the_same_methods():
    def public(cls: type) -> set[str]:
        return {n for n, v in inspect.getmembers(cls) if callable(v) and not n.startswith("_")}

    assert public(Recollect) == public(AsyncRecollect)
    assert public(RecollectAdmin) == public(AsyncRecollectAdmin)
