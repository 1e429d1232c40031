"""The ``recollect`` command (installed with the project): the admin CLI of ``app/cli.py``
without Flask's ``--app`` argument."""

from __future__ import annotations

from flask.cli import FlaskGroup


def main() -> None:
    from app import create_app

    group = FlaskGroup(
        create_app=lambda: create_app(),
        add_default_commands=False,
        load_dotenv=False,
        set_debug_flag=False,
        help="Recollect's administration: tenants, API keys, export and import (needs REDIS_URL).",
    )
    group.main(prog_name="recollect")
