"""WSGI entry point: ``gunicorn wsgi:app`` and ``flask --app wsgi ...``."""

import sys

from config import ConfigError

try:
    from app import create_app

    app = create_app()
except ConfigError as exc:
    # One clear line, not a traceback: the operator fixes the variable and restarts.
    print(f"recollect: {exc}", file=sys.stderr)
    sys.exit(2)
