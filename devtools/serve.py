"""``make run``: the server on this machine under gunicorn (as in production), with a
ready-to-use key for a dev tenant and an admin token.

With ``REDIS_URL`` unset it runs on the embedded in-process store (nothing persisted), so a
newcomer can try the API with nothing installed but Python. That store lives in this
process's memory, so it runs one gunicorn worker forked from the process that created the
key; with ``REDIS_URL`` set it runs ``config/gunicorn.conf.py``'s workers.
"""

from __future__ import annotations

import os
import secrets
import sys
from typing import Any

from gunicorn.app.base import BaseApplication

from config import ConfigError, load_settings


class _Gunicorn(BaseApplication):
    def __init__(self, app: Any, options: dict[str, Any]) -> None:
        self.application = app
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for name, value in self.options.items():
            self.cfg.set(name, value)

    def load(self) -> Any:
        return self.application


def main() -> int:
    # A token for the admin API when none is set, printed below (dev only).
    admin_token = os.environ.setdefault("RECOLLECT_ADMIN_TOKEN", "dev-" + secrets.token_urlsafe(24))
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"recollect: {exc}", file=sys.stderr)
        return 2
    from app import create_app

    app = create_app(settings)
    tenant_id = os.environ.get("RECOLLECT_DEV_TENANT", "dev")
    with app.app_context():
        registry = app.extensions["recollect"].registry
        registry.ensure_tenant(tenant_id)
        key = registry.create_key(tenant_id, label="make run")
    host = os.environ.get("HOST", "127.0.0.1")
    base = f"http://{host}:{settings.port}"
    embedded = settings.redis_url is None
    store = "embedded in-process store (not persistent)" if embedded else "Redis"
    print(
        f"\nRecollect on {base}  (gunicorn, {store}, summarizer: {settings.effective_summarizer})\n"
        f"Dev tenant {tenant_id!r} API key (shown once):\n\n    {key.api_key}\n\n"
        f"Admin token: {admin_token}\n\n"
        f"Try:\n    export KEY={key.api_key}\n"
        f"    curl -s -X POST {base}/sessions/demo/memory "
        "-H \"Authorization: Bearer $KEY\" -H 'Content-Type: application/json' "
        '-d \'{"messages":[{"role":"Human","content":"hello"}]}\'\n'
        f'    curl -s {base}/sessions/demo/memory -H "Authorization: Bearer $KEY"\n'
        f"    open {base}/docs for the API reference\n",
        flush=True,
    )
    _Gunicorn(
        app,
        {
            "bind": f"{host}:{settings.port}",
            "worker_class": "gthread",
            "workers": 1 if embedded else int(os.environ.get("GUNICORN_WORKERS", "2")),
            "threads": int(os.environ.get("GUNICORN_THREADS", "8")),
            # The app object (and with it the embedded store) is forked, not re-imported.
            "preload_app": True,
            "accesslog": None,
            "loglevel": "warning",
        },
    ).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
