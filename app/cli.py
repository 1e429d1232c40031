"""The admin operations from the command line: ``flask --app wsgi tenants|keys ...``, and
moving data in and out: ``export``, ``import`` and ``import-motorhead``.

They talk to the Redis in ``REDIS_URL`` directly, so they work while the server runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import orjson
import redis
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

from app.domain.errors import NotFound, RecollectError
from app.domain.tenancy.authentication import Principal
from app.domain.tenancy.policy import POLICY_FIELDS, policy_from_fields
from app.domain.transfer.format import read_lines
from app.domain.transfer.migration import MotorheadMigration
from app.domain.transfer.motorhead import MotorheadSource
from app.domain.transfer.service import max_line_bytes
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


# --- export and import ---------------------------------------------------------------------


def _principal(tenant_id: str) -> Principal:
    """The tenant, acting as itself (its policy applies to what is imported)."""
    resources = _resources()
    try:
        resources.registry.get_tenant(tenant_id)
        principal = resources.authenticator.principal_for(tenant_id)
        if principal is None:
            raise NotFound(f"tenant {tenant_id!r} not found", code="tenant_not_found")
    except RecollectError as exc:
        _fail(exc)
    return principal


@click.command("export")
@with_appcontext
@click.option("--tenant", "tenant_id", required=True, help="The tenant whose sessions to export.")
@click.option("--session", "session_id", help="Only this session.")
def export_command(tenant_id: str, session_id: str | None) -> None:
    """Write a tenant's sessions (or one) to stdout as NDJSON: each session's line, then its
    messages, oldest first."""
    transfer = _resources().transfer
    _principal(tenant_id)
    out = sys.stdout.buffer
    try:
        if session_id is not None:
            lines = transfer.export_session(tenant_id, session_id)
        else:
            lines = transfer.export_tenant(tenant_id)
        for line in lines:
            out.write(line)
    except RecollectError as exc:
        _fail(exc)
    out.flush()


@click.command("import")
@with_appcontext
@click.option("--tenant", "tenant_id", required=True, help="The tenant to import into.")
@click.option("--session", "session_id", help="Import a one-session file under this id.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_command(tenant_id: str, session_id: str | None, file: Path) -> None:
    """Import an export FILE (a tenant's, or a session's). The whole file is checked first:
    a bad line imports nothing. Sessions that exist already are skipped, so running it
    again copies nothing twice."""
    principal = _principal(tenant_id)
    transfer = _resources().transfer
    limit = max_line_bytes(principal)
    try:
        with file.open("rb") as stream:
            sessions = transfer.check_file(
                principal, read_lines(stream, max_line_bytes=limit), session_id=session_id
            )
        with (
            file.open("rb") as stream,
            click.progressbar(length=sessions, label="Importing sessions", file=sys.stderr) as bar,
        ):
            report = transfer.import_file(
                principal,
                read_lines(stream, max_line_bytes=limit),
                session_id=session_id,
                progress=lambda _: bar.update(1),
            )
    except RecollectError as exc:
        _fail(exc)
    _echo(report.to_dict())


@click.command("import-motorhead")
@with_appcontext
@click.option("--source", required=True, help="The MotorHead deployment's Redis URL (redis://...).")
@click.option("--tenant", "tenant_id", required=True, help="The tenant to copy into.")
@click.option("--namespace", help="Only the sessions listed in this namespace (sessions:<namespace>).")
@click.option("--dry-run", is_flag=True, help="Read and check everything; write nothing.")
def import_motorhead(source: str, tenant_id: str, namespace: str | None, dry_run: bool) -> None:
    """Copy a MotorHead deployment's sessions into a tenant: messages in order, summary,
    tokens, last-write times, and long-term memory into the archive. Sessions the tenant
    has already are skipped, so a second run copies nothing twice. Prints a report."""
    principal = _principal(tenant_id)
    try:
        client = redis.Redis.from_url(source, socket_timeout=30, socket_connect_timeout=5)
    except ValueError:
        raise click.ClickException("invalid_source: --source must be a redis:// or rediss:// URL") from None
    migration = MotorheadMigration(
        MotorheadSource(client, namespace=namespace), _resources().transfer, principal, dry_run=dry_run
    )
    started = False
    try:
        sessions = migration.plan()
        label = "Checking sessions" if dry_run else "Copying sessions"
        with click.progressbar(sessions, label=label, file=sys.stderr) as bar:
            for listed in bar:
                started = True
                migration.copy(listed)
    except RecollectError as exc:
        if started:  # what was done before the failure (a rerun skips it)
            _echo(migration.report.to_dict())
        _fail(exc)
    finally:
        client.close()
    _echo(migration.report.to_dict())


def init_app(app: Flask) -> None:
    app.cli.add_command(tenants_cli)
    app.cli.add_command(keys_cli)
    app.cli.add_command(export_command)
    app.cli.add_command(import_command)
    app.cli.add_command(import_motorhead)
