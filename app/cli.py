"""The admin operations from the command line: ``flask --app wsgi tenants|keys ...``.

They talk to the Redis in ``REDIS_URL`` directly, so they work while the server runs.
"""

from __future__ import annotations

import click
import orjson
from flask import Flask, current_app
from flask.cli import AppGroup

from app.domain.errors import RecollectError
from app.domain.tenancy.policy import POLICY_FIELDS, policy_from_fields
from app.extensions import Resources

tenants_cli = AppGroup("tenants", help="Create, list, update and delete tenants.")
keys_cli = AppGroup("keys", help="Create, list and revoke a tenant's API keys.")


def _resources() -> Resources:
    resources: Resources = current_app.extensions["recollect"]
    if resources.settings.redis_url is None:
        # The embedded store would be this command's own, thrown away when it exits: a key
        # printed from it would be refused by the running server.
        raise click.ClickException(
            "REDIS_URL is not set: these commands work on the server's Redis "
            "(e.g. REDIS_URL=redis://localhost:6379/0), or use the admin API of a running server"
        )
    return resources


def _echo(value: object) -> None:
    click.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


def _policy_options(func):
    options = [
        click.option("--rate-limit", "rate_limit"),
        click.option("--session-ttl-seconds", type=int),
        click.option("--window-size", type=int),
        click.option("--window-tokens", type=int),
        click.option("--max-message-bytes", type=int),
        click.option("--max-sessions", type=int),
        click.option("--summary-model"),
        click.option("--summary-prompt"),
        click.option("--summary-token-budget-daily", type=int),
        click.option("--long-term-memory/--no-long-term-memory", "long_term_memory", default=None),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _fail(exc: RecollectError) -> None:
    raise click.ClickException(f"{exc.code}: {exc.message}")


@tenants_cli.command("create")
@click.argument("tenant_id")
@click.option("--name")
@_policy_options
def create_tenant(tenant_id: str, name: str | None, **policy: object) -> None:
    """Create a tenant and print its first API key (shown once)."""
    registry = _resources().registry
    try:
        tenant, key = registry.create_tenant(tenant_id, name=name, policy=policy_from_fields(policy))
    except RecollectError as exc:
        _fail(exc)
    assert key is not None
    _echo({"tenant": tenant.to_dict(registry.defaults), "key_id": key.key_id, "api_key": key.api_key})


@tenants_cli.command("list")
def list_tenants() -> None:
    registry = _resources().registry
    _echo([t.to_dict(registry.defaults) for t in registry.list_tenants()])


@tenants_cli.command("update")
@click.argument("tenant_id")
@click.option("--name")
@click.option(
    "--reset", multiple=True, type=click.Choice(POLICY_FIELDS), help="Return a field to its default."
)
@_policy_options
def update_tenant(tenant_id: str, name: str | None, reset: tuple[str, ...], **policy: object) -> None:
    registry = _resources().registry
    patch = {k: v for k, v in policy.items() if v is not None} | {k: None for k in reset}
    try:
        policy_from_fields(patch)
        tenant = registry.update_tenant(tenant_id, name=name, policy_patch=patch)
    except RecollectError as exc:
        _fail(exc)
    _echo(tenant.to_dict(registry.defaults))


@tenants_cli.command("delete")
@click.argument("tenant_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def delete_tenant(tenant_id: str, yes: bool) -> None:
    """Delete a tenant, its keys and ALL its data."""
    if not yes:
        click.confirm(f"Erase tenant {tenant_id!r} and all its data?", abort=True)
    resources = _resources()
    try:
        removed = resources.registry.delete_tenant(tenant_id, erase=resources.store.erase_tenant_data)
    except RecollectError as exc:
        _fail(exc)
    _echo({"status": "Ok", "keys_removed": removed})


@keys_cli.command("create")
@click.argument("tenant_id")
@click.option("--label")
def create_key(tenant_id: str, label: str | None) -> None:
    """Create a key for a tenant; the secret is printed once."""
    try:
        key = _resources().registry.create_key(tenant_id, label=label)
    except RecollectError as exc:
        _fail(exc)
    _echo({"key_id": key.key_id, "api_key": key.api_key})


@keys_cli.command("list")
@click.argument("tenant_id")
def list_keys(tenant_id: str) -> None:
    try:
        keys = _resources().registry.list_keys(tenant_id)
    except RecollectError as exc:
        _fail(exc)
    _echo([k.to_dict() for k in keys])


@keys_cli.command("revoke")
@click.argument("tenant_id")
@click.argument("key_id")
def revoke_key(tenant_id: str, key_id: str) -> None:
    try:
        _resources().registry.revoke_key(tenant_id, key_id)
    except RecollectError as exc:
        _fail(exc)
    _echo({"status": "Ok"})


def init_app(app: Flask) -> None:
    app.cli.add_command(tenants_cli)
    app.cli.add_command(keys_cli)
