"""Operator API: tenants, their policies and keys. Guarded by RECOLLECT_ADMIN_TOKEN."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from app.domain.tenancy.policy import POLICY_FIELDS, policy_from_fields
from app.domain.tenancy.tenants import validate_tenant_id
from app.extensions import Resources
from app.http import json_response, parse_json_body
from app.openapi import documented
from app.schemas import (
    KeyCreate,
    KeyCreatedOut,
    KeyListOut,
    StatusOut,
    TenantCreate,
    TenantCreatedOut,
    TenantDeletedOut,
    TenantEnvelope,
    TenantListOut,
    TenantPatch,
    TransferLine,
    UsageOut,
)
from app.transfer import NDJSON, ndjson_response

bp = Blueprint("admin", __name__, url_prefix="/admin")


def _resources() -> Resources:
    return current_app.extensions["recollect"]


def _tenant_json(tenant) -> dict:
    return tenant.to_dict(_resources().registry.defaults)


@bp.post("/tenants")
@documented(
    "Create a tenant and its first key",
    tag="admin",
    ok=(201, TenantCreatedOut),
    body=TenantCreate,
    errors=(409,),
    auth="admin",
)
def create_tenant() -> Response:
    body = parse_json_body(TenantCreate)
    validate_tenant_id(body.id)
    policy = policy_from_fields(body.model_dump(include=set(POLICY_FIELDS)))
    tenant, key = _resources().registry.create_tenant(body.id, name=body.name, policy=policy)
    assert key is not None
    return json_response({"tenant": _tenant_json(tenant), "key_id": key.key_id, "api_key": key.api_key}, 201)


@bp.get("/tenants")
@documented("List tenants", tag="admin", ok=(200, TenantListOut), auth="admin")
def list_tenants() -> Response:
    return json_response({"tenants": [_tenant_json(t) for t in _resources().registry.list_tenants()]})


@bp.get("/tenants/<tenant_id>")
@documented("Show a tenant and its effective policy", tag="admin", ok=(200, TenantEnvelope), auth="admin")
def get_tenant(tenant_id: str) -> Response:
    return json_response({"tenant": _tenant_json(_resources().registry.get_tenant(tenant_id))})


@bp.patch("/tenants/<tenant_id>")
@documented(
    "Change a tenant's name or policy (null = default)",
    tag="admin",
    ok=(200, TenantEnvelope),
    body=TenantPatch,
    auth="admin",
)
def update_tenant(tenant_id: str) -> Response:
    body = parse_json_body(TenantPatch)
    patch = body.model_dump(include=set(POLICY_FIELDS), exclude_unset=True)
    tenant = _resources().registry.update_tenant(tenant_id, name=body.name, policy_patch=patch)
    return json_response({"tenant": _tenant_json(tenant)})


@bp.delete("/tenants/<tenant_id>")
@documented("Delete a tenant and erase all its data", tag="admin", ok=(200, TenantDeletedOut), auth="admin")
def delete_tenant(tenant_id: str) -> Response:
    resources = _resources()
    removed = resources.registry.delete_tenant(tenant_id, erase=resources.store.erase_tenant_data)
    return json_response({"status": "Ok", "keys_removed": removed})


@bp.post("/tenants/<tenant_id>/keys")
@documented("Create a key (shown once)", tag="admin", ok=(201, KeyCreatedOut), body=KeyCreate, auth="admin")
def create_key(tenant_id: str) -> Response:
    # The body is optional (api.md §5 documents none): a bare POST makes an unlabelled key.
    has_body = request.content_length or "Transfer-Encoding" in request.headers
    body = parse_json_body(KeyCreate) if has_body else KeyCreate()
    key = _resources().registry.create_key(tenant_id, label=body.label)
    return json_response({"key_id": key.key_id, "api_key": key.api_key}, 201)


@bp.get("/tenants/<tenant_id>/keys")
@documented("List a tenant's keys (never the secret)", tag="admin", ok=(200, KeyListOut), auth="admin")
def list_keys(tenant_id: str) -> Response:
    keys = _resources().registry.list_keys(tenant_id)
    return json_response({"keys": [k.to_dict() for k in keys]})


@bp.delete("/tenants/<tenant_id>/keys/<key_id>")
@documented("Revoke a key (effective everywhere within 1 s)", tag="admin", ok=(200, StatusOut), auth="admin")
def revoke_key(tenant_id: str, key_id: str) -> Response:
    _resources().registry.revoke_key(tenant_id, key_id)
    return json_response({"status": "Ok"})


@bp.get("/tenants/<tenant_id>/usage")
@documented("A tenant's consumption", tag="admin", ok=(200, UsageOut), auth="admin")
def tenant_usage(tenant_id: str) -> Response:
    resources = _resources()
    tenant = resources.registry.get_tenant(tenant_id)
    ttl = resources.registry.defaults.resolve(tenant.policy).session_ttl_seconds
    return json_response(resources.memory.usage(tenant_id, ttl_seconds=ttl))


@bp.get("/tenants/<tenant_id>/export")
@documented(
    "Export every session of a tenant as NDJSON (each session's line, then its messages)",
    tag="admin",
    ok=(200, TransferLine),
    auth="admin",
    content_type=NDJSON,
)
def export_tenant(tenant_id: str) -> Response:
    resources = _resources()
    resources.registry.get_tenant(tenant_id)
    return ndjson_response(resources.transfer.export_tenant(tenant_id))
